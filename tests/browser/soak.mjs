// Soak test of the page (issue 18, item 4), run by tests/browser/studio.mjs after the bad-input
// cases, or alone: `node tests/browser/soak.mjs` (SOAK_GENERATIONS=600 for a longer run).
//
//  1. Many generations in one page on WebGPU (SwiftShader) with the tiny SD-1 fixture, 8 px and one
//     step so that it is the page and the engine that are exercised, not the UNet: clicks with an
//     edit file on (an original and an edited image each) and off, the seed and prompt changing,
//     an UCE edit applied and removed now and then, and the model switched to the tiny SD-2
//     fixture and back (the edit file attached again) every 40 clicks. After a warm-up the wasm memory must not grow
//     (WebAssembly memory never shrinks: any growth is a leak) and the GPU buffers the engine holds
//     must stay level: the largest and smallest amounts of the last quarter are compared with those
//     of the second. cubecl keeps its pool and never destroys a buffer; wgpu lets dropped ones go
//     to the garbage collector, so live bytes wander with GC timing: hence a tolerance, not equality.
//  2. Cancel at every stage a user can click it in: idle, while a model loads, while an SPM file is
//     read, while UCE is computed, at the start of a run, early, at a preview, late, after the last
//     step (the VAE decode), and during the edited image. Each time the page must come back to
//     ready, and the next run must give the reference image bit for bit.
// Figures go to tests/browser/out/soak.json.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { FIXTURE, OUT, PARAMS, ROOT, assert, generate, launch, log, maxDiff, openPage, results, runCase, serve, setParams, tid, visibleError, waitReady } from './lib.mjs';

const EDIT = join(ROOT, 'tests/browser/fixtures/tiny-sd1-mid-to_v-x3.safetensors');
const SPM = join(ROOT, 'tests/fixtures/reference/spm/sd1_spm_a.safetensors');
const SD2 = join(ROOT, 'tests/fixtures/tiny-sd2');
const GENERATIONS = Number(process.env.SOAK_GENERATIONS ?? 200);
/** wasm memory growth allowed after the warm-up: a few pages of allocator slack, no more. */
const WASM_GROWTH_MAX = 128 * 1024;
/** Last quarter vs second quarter of the GPU bytes held (see the header on GC timing). */
const GPU_TOLERANCE = 1.25;
const S = { ...PARAMS, steps: 1, size: 8, scheduler: 'ddim' };
const PROMPTS = ['a big red star on a blue striped background', 'a green triangle', 'a yellow circle on black', 'a skull'];

const stats = (page) => page.evaluate(() => window.__studio.stats());
const idle = (page, timeout = 120_000) => page.waitForFunction(() => window.__studio.ready(), null, { timeout, polling: 20 });
const editCount = (page) => page.evaluate(() => window.__studio.edits().length);

/** Clicks Generate and waits until the page is idle again; the number of images it made. */
async function click(page) {
  const err0 = await visibleError(page);
  const n0 = await page.evaluate(() => window.__studio.timings.length);
  await page.click(tid('generate'));
  await page.waitForFunction(() => window.__studio.busy() === 'generate', null, { timeout: 10_000, polling: 5 }).catch(() => {});
  await idle(page);
  const err = await visibleError(page);
  if (err && err !== err0) throw new Error(`a generation failed: ${err}`);
  return (await page.evaluate(() => window.__studio.timings.length)) - n0;
}

async function applyUce(page, concept) {
  const n = await editCount(page);
  await page.selectOption(tid('erase-method'), 'uce');
  await page.fill(tid('erase-concepts'), concept);
  await page.fill(tid('erase-params'), '');
  await page.click(tid('erase-apply'));
  await page.waitForFunction((k) => window.__studio.edits().length > k && window.__studio.ready(), n, { timeout: 120_000, polling: 20 });
}

async function removeLast(page) {
  const n = await editCount(page);
  await page.click(tid(`edit-remove-${n - 1}`));
  await page.waitForFunction((k) => window.__studio.edits().length < k && window.__studio.ready(), n, { timeout: 60_000, polling: 20 });
}

/** Loads another model (`pick` starts it), then puts the soak's size and steps back. */
async function switchModel(page, pick) {
  const name0 = await page.textContent(tid('model-info'));
  await pick();
  await page.waitForFunction((n) => window.__studio.ready() && document.querySelector('[data-testid="model-info"]').textContent !== n, name0, { timeout: 120_000, polling: 20 });
  // The smallest size it offers (8 px for the SD-1 fixture, whose VAE halves; more for SD-2's).
  const sizes = await page.$$eval(`${tid('size')} option`, (o) => o.map((x) => Number(x.value)).filter((v) => v > 0));
  await page.selectOption(tid('size'), String(Math.min(...sizes)));
  await page.fill(tid('steps'), String(S.steps));
}

const quarter = (xs, q) => xs.slice(Math.floor((xs.length * q) / 4), Math.floor((xs.length * (q + 1)) / 4));

export async function soakCases({ ctx, url }) {
  await runCase(`soak: ${GENERATIONS} generations in one page, wasm memory flat and GPU memory level`, async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, S);
    await page.setInputFiles(tid('edit-input'), EDIT);
    await idle(page);
    assert((await editCount(page)) === 1, 'the edit file did not load');
    const t0 = Date.now();
    const samples = [];
    let made = 0;
    let clicks = 0;
    let warmAt = null;
    let switches = 0;
    while (made < GENERATIONS) {
      // Every third click with the edit off (one image), otherwise on (two); the prompt and seed move.
      const on = clicks % 3 !== 2;
      const enabled = await page.evaluate(() => window.__studio.edits()[0].enabled);
      if (enabled !== on) await page.click(tid('edit-toggle-0'));
      await page.fill(tid('prompt'), PROMPTS[clicks % PROMPTS.length]);
      await page.fill(tid('seed'), String(1000 + (clicks % 7)));
      // Now and then an UCE edit is computed, used for a run and removed (its weights freed).
      if (clicks % 25 === 10) await applyUce(page, 'a skull');
      made += await click(page);
      if (clicks % 25 === 10) await removeLast(page);
      // And the model is switched: the tiny SD-2 fixture for a run, then back (the edit file again).
      if (clicks % 40 === 30) {
        await switchModel(page, () => page.setInputFiles(tid('folder-input'), SD2));
        made += await click(page);
        await switchModel(page, () => page.selectOption(tid('model-select'), 'tiny-sd1'));
        await page.setInputFiles(tid('edit-input'), EDIT);
        await idle(page);
        switches += 2;
      }
      clicks++;
      const s = await stats(page);
      samples.push({ made, wasm: s.wasmBytes, gpuBytes: s.gpu?.liveBytes ?? null, gpuBuffers: s.gpu?.liveBuffers ?? null });
      if (warmAt === null && made >= GENERATIONS / 4) warmAt = samples.length;
    }
    const seconds = (Date.now() - t0) / 1000;
    const last = await stats(page);
    await page.close();
    const warm = samples[warmAt - 1];
    const wasmGrowth = last.wasmBytes - warm.wasm;
    const gpu = samples.map((s) => s.gpuBytes);
    const q2 = quarter(gpu.slice(warmAt), 0).concat(quarter(gpu, 1)).filter((x) => x !== null);
    const q4 = quarter(gpu, 3).filter((x) => x !== null);
    const figures = {
      generations: made,
      clicks,
      modelSwitches: switches,
      seconds: Number(seconds.toFixed(1)),
      wasmBytesAtWarm: warm.wasm,
      wasmBytesAtEnd: last.wasmBytes,
      wasmGrowth,
      gpuSecondQuarter: q2.length ? { max: Math.max(...q2), min: Math.min(...q2) } : null,
      gpuLastQuarter: q4.length ? { max: Math.max(...q4), min: Math.min(...q4) } : null,
      gpuPeak: Math.max(...gpu.filter((x) => x !== null)),
      gpuBuffersAtEnd: last.gpu?.liveBuffers ?? null,
      gpuDestroyed: last.gpu?.destroyed ?? null,
      gpuCollected: last.gpu?.collected ?? null,
    };
    writeFileSync(join(OUT, 'soak.json'), JSON.stringify({ figures, samples }, null, 1));
    assert(made >= GENERATIONS, `only ${made} generations`);
    assert(wasmGrowth <= WASM_GROWTH_MAX, `wasm memory grew by ${wasmGrowth} bytes after the warm-up (${warm.wasm} → ${last.wasmBytes}): a leak`);
    assert(figures.gpuSecondQuarter && figures.gpuLastQuarter, 'no GPU memory figures: is the page on WebGPU?');
    const { gpuSecondQuarter: a, gpuLastQuarter: b } = figures;
    assert(b.max <= a.max * GPU_TOLERANCE, `GPU bytes held rose: last-quarter max ${b.max} vs second-quarter max ${a.max} (×${GPU_TOLERANCE} allowed)`);
    assert(b.min <= a.min * GPU_TOLERANCE, `GPU bytes held rose: last-quarter floor ${b.min} vs second-quarter floor ${a.min} (×${GPU_TOLERANCE} allowed)`);
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    return figures;
  });

  await runCase('soak: cancel at every stage leaves the page ready and the next image exact', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    const R = { ...PARAMS, steps: 4, scheduler: 'ddim' };
    await setParams(page, R);
    const reference = await generate(page);
    const cancel = () => page.evaluate(() => window.__studio.cancel());
    const stages = [];
    /** After a cancel: ready again, no error but a cancel notice, the reference image exact. */
    const after = async (stage, extra = {}, mustCancel = false) => {
      await idle(page);
      const said = (await page.textContent(tid('status'))).trim();
      if (mustCancel) assert(/Cancelled/.test(said), `${stage}: the run was not cancelled (${said})`);
      const err = await visibleError(page);
      if (err && !/cancel/i.test(err)) throw new Error(`${stage}: ${err}`);
      while ((await editCount(page)) > 0) await removeLast(page);
      await setParams(page, R);
      const img = await generate(page);
      const d = maxDiff(reference, img).max;
      assert(d === 0, `${stage}: the image after the cancel differs (max |Δ| ${d})`);
      stages.push({ stage, afterCancel: said.slice(0, 90), ...extra });
    };
    const progressAtLeast = (f) => page.waitForFunction((x) => Number(document.querySelector('[data-testid="progress"]').value) >= x, f, { timeout: 120_000, polling: 5 });

    await cancel();
    await after('idle');

    // While a model loads: the tiny fixture again, through "Open folder".
    await page.setInputFiles(tid('folder-input'), FIXTURE);
    const sawLoad = await page.waitForFunction(() => window.__studio.busy() === 'load', null, { timeout: 10_000, polling: 2 }).then(() => true, () => false);
    await cancel();
    await after('model loading', { sawLoad });

    await page.setInputFiles(tid('edit-input'), SPM);
    await cancel();
    await idle(page);
    await after('SPM file read', { entries: 'removed after' });

    await page.selectOption(tid('erase-method'), 'uce');
    await page.fill(tid('erase-concepts'), 'a red star');
    await page.fill(tid('erase-params'), '');
    await page.click(tid('erase-apply'));
    const sawEdit = await page.waitForFunction(() => window.__studio.busy() === 'edit', null, { timeout: 10_000, polling: 2 }).then(() => true, () => false);
    await cancel();
    await after('UCE computed', { sawEdit });

    await page.click(tid('generate'));
    await cancel();
    await after('start of a run');

    await page.fill(tid('steps'), '40');
    await page.click(tid('generate'));
    await progressAtLeast(2 / 40);
    await cancel();
    await after('early in a run', {}, true);

    await page.fill(tid('steps'), '40');
    await page.selectOption(tid('preview-every'), '1');
    const previews0 = await page.evaluate(() => window.__studio.previews.length);
    await page.click(tid('generate'));
    await page.waitForFunction((n) => window.__studio.previews.length > n, previews0, { timeout: 120_000, polling: 5 });
    await cancel();
    await after('at a preview', {}, true);
    await page.selectOption(tid('preview-every'), '5');

    await page.fill(tid('steps'), '40');
    await page.click(tid('generate'));
    await progressAtLeast(36 / 40);
    await cancel();
    await after('late in a run', {}, true);

    await page.click(tid('generate'));
    await progressAtLeast(1);
    await cancel();
    await after('after the last step');

    await page.setInputFiles(tid('edit-input'), EDIT);
    await idle(page);
    const before = await page.getAttribute(tid('image-original'), 'data-request-id');
    await page.click(tid('generate'));
    await page.waitForFunction((b) => document.querySelector('[data-testid="image-original"]').dataset.requestId !== b, before, { timeout: 120_000, polling: 5 });
    await cancel();
    await after('during the edited image');

    await page.close();
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    return { stages };
  });
}

// Alone: `node tests/browser/soak.mjs`.
if (import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { url, proc } = await serve();
  const gpu = await launch(true);
  try {
    await soakCases({ ctx: gpu.ctx, url });
  } finally {
    await gpu.ctx.close().catch(() => {});
    proc.kill();
  }
  log(results.failures.length ? `FAILED: ${results.failures.join('; ')}` : 'soak cases passed');
  process.exit(results.failures.length ? 1 : 0);
}
