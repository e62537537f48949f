// Browser half of the bad-input corpus (issue 18, item 1) and the GPU-loss cases (item 3), run by
// tests/browser/studio.mjs on WebGPU (SwiftShader) with the tiny SD-1 fixture:
//  - every case of tests/bad-inputs/cases.json that the page can be given: the mutated model
//    folders (written by crates/cli/tests/bad_inputs.rs with BAD_INPUTS_BUILD_ONLY), the edit /
//    SPM / LoRA / eraser files, the hostile form values (steps, sizes, guidance, a 10,000-character
//    prompt, SLD / SAFREE / Ring-A-Bell / UCE settings), plus truncated, oversized and hand-edited
//    share links. Each must show a message that names the file, tensor or field (the case's
//    `expect` strings, or its `page` ones where the page words it differently), and afterwards
//    the loaded model must be the same: the SHA-256 of its weights (Session.weightsDigest) and its
//    entries (ids, on/off) are compared with those before, and a final image with the first one;
//  - the GPU device destroyed mid-run: the job ends with a message, a new engine on a new device
//    loads the model and its entries again (same digest, same entries, same pixels);
//  - a GPU out of memory (`?gpuBudget=`, a stand-in GPU half as large again as the most a small
//    run holds): a 512 px image ends with a message saying what was asked and what fits, the studio
//    recovers and the small image comes out as before;
//  - a model whose largest tensor is more than the GPU's largest storage buffer (a device with
//    WebGPU's default limits, `?gpuLimits=default`) is refused before any download, with the numbers.

import { execFileSync } from 'node:child_process';
import { closeSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { FIXTURE, OUT, PARAMS, ROOT, assert, distinctPixels, generate, log, maxDiff, openPage, runCase, setParams, tid, visibleError, waitReady } from './lib.mjs';

const CORPUS = JSON.parse(readFileSync(join(ROOT, 'tests/bad-inputs/cases.json'), 'utf8'));
const EDIT = join(ROOT, 'tests/browser/fixtures/tiny-sd1-mid-to_v-x3.safetensors');
const SHOTS = join(ROOT, 'docs/screenshots');
const P = { ...PARAMS, steps: 3, scheduler: 'ddim' };

/** The corpus' model folders and files, made from the fixtures by the CLI test (a second or two). */
function buildCorpus() {
  const dir = join(OUT, 'bad-inputs');
  rmSync(dir, { recursive: true, force: true });
  execFileSync('cargo', ['test', '-q', '--locked', '-p', 'cli', '--test', 'bad_inputs'], {
    cwd: ROOT,
    env: { ...process.env, BAD_INPUTS_OUT: dir, BAD_INPUTS_BUILD_ONLY: '1' },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return dir;
}

/**
 * A hub-mirror repo shaped like SD 1.x's text encoder where it matters here: a token embedding of
 * 49408 × 768 f32 (151.8 MB, more than WebGPU's default 128 MiB storage buffer). The file is
 * sparse (zeros): only its header is ever read.
 */
export function makeHugeRepo() {
  const dir = join(OUT, 'huge-text-encoder');
  rmSync(dir, { recursive: true, force: true });
  cpSync(FIXTURE, dir, { recursive: true });
  const name = 'text_model.embeddings.token_embedding.weight';
  const bytes = 49408 * 768 * 4;
  const header = Buffer.from(JSON.stringify({ [name]: { dtype: 'F32', shape: [49408, 768], data_offsets: [0, bytes] } }));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(header.length));
  const file = join(dir, 'text_encoder/model.safetensors');
  rmSync(file);
  const fd = openSync(file, 'w');
  writeSync(fd, len);
  writeSync(fd, header);
  closeSync(fd);
  execFileSync('truncate', ['-s', String(8 + header.length + bytes), file]);
  return dir;
}

/** A screenshot with the message in view (a file input may have scrolled the page away from it). */
async function shot(page, path) {
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.locator('[data-testid="error"]').scrollIntoViewIfNeeded().catch(() => {});
  await page.screenshot({ path });
}

const state = (page) => page.evaluate(async () => ({ digest: await window.__studio.digest(), edits: window.__studio.edits() }));

async function waitIdle(page, timeout = 120_000) {
  await page.waitForFunction(() => window.__studio.ready(), null, { timeout, polling: 50 });
}

/** Waits for a new visible error (or, with `okToo`, for the page to be idle with none). */
async function newError(page, before, timeout = 60_000) {
  await page.waitForFunction(
    (b) => {
      const e = document.querySelector('[data-testid="error"]');
      const t = e && !e.hidden ? e.textContent.replace(/\s+/g, ' ').trim() : null;
      return t && t !== b && window.__studio.busy() === null;
    },
    before,
    { timeout, polling: 50 },
  );
  return visibleError(page);
}

/** Clears the error box (the page clears it on the next action; a click on its close button does too). */
async function clearErr(page) {
  await page.evaluate(() => {
    const e = document.querySelector('[data-testid="error"]');
    if (e) e.hidden = true;
  });
}

/** Puts a value the select does not offer into it, as a hand-edited page would. */
async function forceSelect(page, id, value) {
  await page.evaluate(([i, v]) => {
    const s = document.querySelector(`[data-testid="${i}"]`);
    s.append(new Option(v, v));
    s.value = v;
    s.dispatchEvent(new Event('change', { bubbles: true }));
  }, [id, value]);
}

/**
 * Types text into a number field the way a browser without number inputs (or a hand-edited page)
 * would: the value is set and an input event fired (playwright's fill refuses text there).
 */
async function typeInto(page, id, value) {
  await page.evaluate(([i, v]) => {
    const el = document.querySelector(`[data-testid="${i}"]`);
    el.type = 'text';
    el.value = v;
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, [id, value]);
}

/** How each argument case of the corpus is given to the page; null: the page has no such input. */
function pageAction(c, files) {
  const long = (() => {
    const piece = 'a red skull\u0001\t\u007f\u001b[31m 💀🧙‍♂️ 👩🏽‍🔬 مرحبا \u202etxet\u200b ';
    return [...piece].join('').repeat(200).slice(0, 10_000);
  })();
  const form = (fill) => async (page) => {
    await setParams(page, P);
    await fill(page);
    await page.click(tid('generate'));
  };
  const erase = (method, concepts, params, force = false) => async (page) => {
    if (force) await forceSelect(page, 'erase-method', method);
    else await page.selectOption(tid('erase-method'), method);
    await page.fill(tid('erase-concepts'), concepts);
    await page.fill(tid('erase-params'), params);
    await page.click(tid('erase-apply'));
  };
  const file = (name) => async (page) => page.setInputFiles(tid('edit-input'), name);
  const A = {
    'arg-steps-zero': form((p) => p.fill(tid('steps'), '0')),
    'arg-steps-huge': form((p) => p.fill(tid('steps'), '100000')),
    'arg-height-zero': form((p) => forceSelect(p, 'size', '0')),
    'arg-height-huge': form((p) => forceSelect(p, 'size', '100000')),
    'arg-height-not-multiple': form((p) => forceSelect(p, 'size', '63')),
    'arg-guidance-nan': form((p) => typeInto(p, 'guidance', 'NaN')),
    'arg-guidance-inf': form((p) => typeInto(p, 'guidance', 'inf')),
    'arg-guidance-negative': form((p) => p.fill(tid('guidance'), '-3')),
    'arg-long-hostile-prompt': form((p) => p.fill(tid('prompt'), long)),
    'arg-sld-unknown': erase('sld', '', 'preset=extreme'),
    'arg-safree-empty': erase('safree', ' ; ', ''),
    'arg-ring-a-bell-malformed': erase('ring-a-bell', 'no pipe here', ''),
    'edit-of-sd2': file(join(files, 'uce-sd2.safetensors')),
    'edit-truncated': file(join(files, 'uce-sd1-cut.safetensors')),
    'edit-is-unet-weights': file(join(FIXTURE, 'unet/diffusion_pytorch_model.safetensors')),
    'spm-is-unet-weights': file(join(FIXTURE, 'unet/diffusion_pytorch_model.safetensors')),
    'lora-for-sdxl': file(join(files, 'sdxl-lora.safetensors')),
    'eraser-of-sd2': file(join(files, 'leace-sd2.safetensors')),
    'erase-empty-concepts': erase('uce', ' ; ', ''),
    'erase-lambda-nan': erase('uce', 'a cat', 'lamb=NaN'),
    'erase-method-unknown': erase('esd', 'a cat', '', true),
    'arg-unknown-flag': erase('uce', 'a cat', 'stepz=3'),
  };
  return A[c.id] ?? null;
}

/** What the page must say for a case where its words differ from the CLI's (flags are form fields there). */
const PAGE_EXPECT = {
  'arg-steps-zero': [/steps/i, /got 0/],
  'arg-steps-huge': [/steps/i, /500/, /got 100000/],
  'arg-height-zero': [/size|height/i],
  'arg-height-huge': [/size|height/i, /2048/],
  'arg-height-not-multiple': [/63/, /multiple/i],
  'arg-guidance-nan': [/guidance/i, /got NaN/],
  'arg-guidance-inf': [/guidance/i, /50/, /got inf/],
  'arg-guidance-negative': [/guidance/i, /got -3/],
  'arg-sld-unknown': [/unknown SLD preset `extreme`/],
  'arg-safree-empty': [/keyword/],
  'arg-ring-a-bell-malformed': [/no pipe here/],
  'erase-empty-concepts': [/concept/i],
  'erase-lambda-nan': [/lamb/],
  'erase-method-unknown': [/esd/],
  'arg-unknown-flag': [/stepz/],
};

/** Share links: truncated, oversized, hand-edited. The page must open, keep every field in bounds and load the model. */
const LINKS = [
  { id: 'link-truncated', hash: '#v=1&prompt=a%20red%20sk&steps=2' + '&seed=12'.slice(0, 5) },
  { id: 'link-oversized', hash: `#v=1&prompt=${'x'.repeat(200_000)}&steps=${'9'.repeat(400)}` },
  { id: 'link-hand-edited', hash: '#v=1&steps=-5&guidance=NaN&size=63&scheduler=evil&seed=1e309&edits=%00%00&model=../../etc' },
  { id: 'link-garbage', hash: '#%E0%A4%A&&&==&\u0000' },
];

export async function badInputCases({ ctx, url }) {
  let dir;
  try {
    dir = buildCorpus();
  } catch (e) {
    await runCase('bad inputs in the page', async () => {
      throw new Error(`could not build the corpus (cargo test -p cli --test bad_inputs with BAD_INPUTS_BUILD_ONLY): ${e.message}`);
    });
    return;
  }
  const files = join(dir, '_files');

  await runCase('bad inputs in the page: every case of the corpus gives a clear message and leaves the loaded model unchanged (weights digest, entries)', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, P);
    const first = await generate(page);
    // An entry, so that "unchanged" covers the variants too: an edit file, left on.
    await page.setInputFiles(tid('edit-input'), EDIT);
    await waitIdle(page);
    // A run first (the edited variant is left in place): the digest is of the loaded model with
    // every entry off all the same (Session.weightsDigest), and the entries are compared apart.
    await generate(page);
    await waitIdle(page);
    const before = await state(page);
    assert(/^[0-9a-f]{64}$/.test(before.digest) && before.edits.length === 1, `state before: ${JSON.stringify(before)}`);
    const rows = [];
    const failures = [];
    const check = async (id, msg, patterns, ok = false) => {
      const after = await state(page);
      const row = { id, message: (msg ?? '').slice(0, 300), reloaded: /loaded again/.test(msg ?? ''), same: after.digest === before.digest && JSON.stringify(after.edits) === JSON.stringify(before.edits) };
      rows.push(row);
      if (!ok && !msg) failures.push(`${id}: no message`);
      for (const p of patterns) if (!ok && !(p instanceof RegExp ? p.test(msg ?? '') : (msg ?? '').includes(p))) failures.push(`${id}: ${JSON.stringify(row.message)} lacks ${p}`);
      if (!row.same) failures.push(`${id}: the loaded model changed (digest ${after.digest.slice(0, 12)} vs ${before.digest.slice(0, 12)}, entries ${JSON.stringify(after.edits)})`);
      await clearErr(page);
    };

    let shots = 0;
    for (const c of CORPUS.cases) {
      try {
        shots += await runOne(c);
      } catch (e) {
        failures.push(`${c.id}: ${String(e.message).split('\n')[0]} (busy: ${await page.evaluate(() => window.__studio.busy())}, error: ${await visibleError(page)})`);
        await waitIdle(page).catch(() => {});
        await clearErr(page);
      }
    }
    async function runOne(c) {
      let shots = 0;
      const folder = join(dir, c.id);
      if (existsSync(folder) && !c.args) {
        if (c.ok) return shots; // a folder the studio accepts (an EOS-less vocab) would replace the model: the CLI covers it
        const err0 = await visibleError(page);
        await page.setInputFiles(tid('folder-input'), folder);
        const msg = await newError(page, err0);
        // A folder that fails while its weights are read (after the engine let the model go)
        // is followed by the previous model's reload: wait for it.
        await waitIdle(page);
        if (c.id === 'st-nan-weights' || c.id === 'cfg-text-hidden-huge') {
          await shot(page, join(SHOTS, `bad-input-${c.id}.png`));
          shots++;
        }
        await check(c.id, msg, c.page ?? c.expect);
        return shots;
      }
      const act = pageAction(c, files);
      if (!act) {
        rows.push({ id: c.id, skipped: 'no such input in the page (a CLI-only flag or command)' });
        return shots;
      }
      const err0 = await visibleError(page);
      await act(page);
      if (c.ok) {
        // Must succeed: the prompt is truncated with a notice, the image is made.
        await waitIdle(page, 300_000);
        const err = await visibleError(page);
        if (err && err !== err0) failures.push(`${c.id}: failed in the page: ${err}`);
        await check(c.id, null, [], true);
        return shots;
      }
      const msg = await newError(page, err0);
      await waitIdle(page);
      if (c.id === 'lora-for-sdxl') {
        await shot(page, join(SHOTS, `bad-input-${c.id}.png`));
        shots++;
      }
      await check(c.id, msg, PAGE_EXPECT[c.id] ?? c.expect);
      return shots;
    }
    // The model still makes the first image, bit for bit.
    await setParams(page, P);
    await page.evaluate(() => document.querySelector('[data-testid="edit-toggle-0"]')?.click());
    const last = await generate(page).catch((e) => (failures.push(`the image after the corpus: ${e.message}`), null));
    const d = last ? maxDiff(first, last).max : null;
    if (last && d !== 0) failures.push(`the image after the corpus differs from the first (max |Δ| ${d})`);
    await page.close();

    // Share links: the page opens, loads, generates.
    for (const l of LINKS) {
      const { page: p } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu${l.hash}`);
      try {
        await waitReady(p);
        const steps = Number(await p.inputValue(tid('steps')));
        if (!(steps >= 1 && steps <= 500)) failures.push(`${l.id}: steps field ${steps}`);
        await p.fill(tid('steps'), '2');
        const img = await generate(p);
        if (distinctPixels(img) < 2) failures.push(`${l.id}: flat image`);
        rows.push({ id: l.id, message: (await visibleError(p)) ?? '', same: true });
      } catch (e) {
        failures.push(`${l.id}: ${e.message}`);
      }
      await p.close();
    }
    writeFileSync(join(OUT, 'bad-inputs-page.json'), JSON.stringify(rows, null, 1));
    assert(failures.length === 0, `${failures.length} case(s) failed:\n  ${failures.join('\n  ')}`);
    const tried = rows.filter((r) => !r.skipped).length;
    assert(tried >= 60, `only ${tried} cases tried in the page`);
    assert(consoleErrors.filter((e) => !/Failed to load resource|wgpu|panicked|RuntimeError|unreachable/.test(e)).length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    // Refusals found only while the weights were read (after the old model was let go) reload it.
    const reloaded = rows.filter((r) => r.reloaded).map((r) => r.id);
    return { tried, skipped: rows.filter((r) => r.skipped).map((r) => r.id), reloaded, screenshots: shots, digest: before.digest.slice(0, 16) };
  });

  await runCase('device loss: the running job ends with a message, a new device loads the model and its entries again', async () => {
    const { page } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, P);
    await page.setInputFiles(tid('edit-input'), EDIT);
    await waitIdle(page);
    await page.selectOption(tid('erase-method'), 'uce');
    await page.fill(tid('erase-concepts'), 'a red star');
    await page.fill(tid('erase-params'), '');
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 2 && window.__studio.busy() === null, null, { timeout: 120_000 });
    await page.click(tid('edit-toggle-0')); // off: the on/off state must come back too
    const img = await generate(page);
    await waitIdle(page); // the edited image follows the original
    const before = await state(page);
    // A long run, then the device goes away under it.
    await page.fill(tid('steps'), '400');
    await page.click(tid('generate'));
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="progress"]').value) >= 3 / 400, null, { timeout: 120_000, polling: 20 });
    await page.evaluate(() => window.__studio.loseDevice());
    await page.waitForFunction(() => /lost/i.test(document.querySelector('[data-testid="error"]').textContent), null, { timeout: 60_000 });
    const message = await visibleError(page);
    await page.waitForFunction(() => window.__studio.ready() && /Recovered/.test(document.querySelector('[data-testid="status"]').textContent), null, { timeout: 120_000, polling: 50 });
    const after = await state(page);
    const status = await page.textContent(tid('status'));
    const finalMessage = await visibleError(page);
    await shot(page, join(SHOTS, 'device-lost.png'));
    assert(JSON.stringify(after.edits) === JSON.stringify(before.edits), `entries after recovery ${JSON.stringify(after.edits)} vs ${JSON.stringify(before.edits)}`);
    assert(/WebGPU/.test(await page.textContent(tid('engine'))), 'the new engine is not on WebGPU');
    await page.fill(tid('steps'), String(P.steps));
    const again = await generate(page);
    await waitIdle(page);
    // The loaded weights (every entry off) before the loss and after.
    const ran = await state(page);
    assert(after.digest === before.digest, `digest after recovery ${after.digest} vs ${before.digest}`);
    assert(ran.digest === before.digest, `digest after a run after recovery ${ran.digest} vs ${before.digest}`);
    assert(maxDiff(img, again).max === 0, 'the image after recovery differs');
    await page.close();
    return { message, finalMessage, status: status.trim(), digest: before.digest.slice(0, 16) };
  });

  await runCase('out of GPU memory: the job ends saying what was asked and what fits, the studio recovers', async () => {
    // The most the tiny model held on the GPU during a small run (burn's pool included)...
    const { page: probe } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(probe);
    await setParams(probe, P);
    await generate(probe);
    const held = (await probe.evaluate(() => window.__studio.stats())).gpu.peakBytes;
    await probe.close();
    // ...then a stand-in GPU with half as much again: the small run fits, a 512 px one does not.
    const budget = Math.ceil(held * 1.5);
    const { page } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu&gpuBudget=${budget}`);
    await waitReady(page);
    await setParams(page, P);
    const small = await generate(page);
    const big = 512;
    await forceSelect(page, 'size', String(big));
    const err0 = await visibleError(page);
    await page.click(tid('generate'));
    await page.waitForFunction((e0) => {
      const e = document.querySelector('[data-testid="error"]');
      return e && !e.hidden && e.textContent !== e0 && /memory/.test(e.textContent);
    }, err0, { timeout: 120_000, polling: 50 });
    const message = await visibleError(page);
    await shot(page, join(SHOTS, 'out-of-memory.png'));
    for (const p of [/ran out of memory/, /asked for a buffer of [\d.]+ [KMG]B while its buffers held [\d.]+ [KMG]B/, /stand-in of \?gpuBudget=/, /maxBufferSize/, /smaller image size/])
      assert(p.test(message), `message ${JSON.stringify(message)} lacks ${p}`);
    await page.waitForFunction(() => window.__studio.ready() && /Recovered/.test(document.querySelector('[data-testid="status"]').textContent), null, { timeout: 120_000, polling: 50 });
    await page.selectOption(tid('size'), String(P.size));
    const again = await generate(page);
    assert(maxDiff(small, again).max === 0, 'the small image after recovery differs');
    await page.close();
    return { peakOfSmallRun: held, budget, bigSize: big, message };
  });

  await runCase('too large for this GPU: refused before download, with the numbers', async () => {
    const { page } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu&gpuLimits=default&hub=${encodeURIComponent(`${url}hub-mirror`)}`);
    await waitReady(page);
    const title = await page.getAttribute(tid('engine'), 'title');
    assert(/134 MB/.test(title ?? ''), `the device should have the default 128 MiB limit: ${title}`);
    const logBefore = await (await fetch(`${url}hub-mirror/_log`)).json();
    await page.selectOption(tid('model-select'), 'hub:other');
    await page.fill(tid('hub-repo'), 'erasure-studio/huge-text-encoder');
    const err0 = await visibleError(page);
    await page.click(tid('hub-download'));
    const msg = await newError(page, err0);
    await shot(page, join(SHOTS, 'too-large-for-gpu.png'));
    for (const p of [/token_embedding/, /151\.7 MB|151\.8 MB/, /134\.2 MB/, /maxStorageBufferBindingSize/, /Nothing was downloaded/]) assert(p.test(msg), `message ${JSON.stringify(msg)} lacks ${p}`);
    const logAfter = await (await fetch(`${url}hub-mirror/_log`)).json();
    const fresh = logAfter.slice(logBefore.length);
    const full = fresh.filter((r) => /resolve\//.test(r.path) && !/^bytes=(0-7|8-\d+)$/.test(r.range ?? ''));
    assert(full.length === 0, `files were downloaded: ${JSON.stringify(full).slice(0, 300)}`);
    // The tiny model stays loaded and usable.
    await waitIdle(page);
    await page.fill(tid('steps'), '2');
    await generate(page);
    await page.close();
    return { message: msg, requests: fresh.length };
  });
}
