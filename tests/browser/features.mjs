// Browser tests of the studio's tools, run by tests/browser/studio.mjs on WebGPU (SwiftShader)
// with the tiny SD-1 fixture:
//  - edits: an edit file (tests/browser/fixtures, made by make_edit_fixtures.py) is applied; the
//    edited image differs from the original; the original run after it (edits reverted by the
//    worker) equals the first original bit for bit; toggling off/on reproduces both images
//    exactly; previews arrive during the run; the PNG carries the parameters in text chunks; the
//    edit file exports unchanged; a file of the wrong shape is refused and leaves the model intact;
//    UCE computed in the page equals `studio erase` (1e-5 relative) and changes the image;
//  - adapters and steering: an SPM attached in the page equals `studio generate --spm` (FT on,
//    and --no-ft), detaching gives the original back bit for bit, truncated / wrong-architecture
//    files are refused with the file, tensor and shapes named, a LoRA attaches, and SLD in the
//    page equals `studio generate --sld max` and SAFREE `--safree` (pixels within TOL_WEBGPU = 2 of 255, like the
//    plain WebGPU-vs-CLI comparison);
//  - embedding erasers: a LEACE eraser fitted in the page (asynchronous read-backs on WebGPU) and
//    exported equals `studio generate --leace EXPORTED`, a Ring-A-Bell probe `--ring-a-bell`, both
//    together `--leace … --ring-a-bell …` (TOL_WEBGPU); the exported file dropped back in gives the
//    same image bit for bit; eraser files of another text width or cut short are refused;
//  - grid: prompts × variants;
//  - share URL: every setting round-trips through the link, and the link reproduces the image;
//  - hub: a "hub" model downloaded from the local mirror (vite.config.ts) with per-file progress,
//    interrupted by a reload and resumed with a Range request, verified by SHA-256, loaded from
//    the cache with no request after a reload, equal to the bundled copy; cache inspect / clear.
// Screenshots go to docs/screenshots/ (the README shows some) and tests/browser/out/.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLI, FIXTURE, OUT, PARAMS, ROOT, TOL_WEBGPU, assert, cliImage, countDiff, generateAll, log, maxDiff, openPage, pngText, readCanvas, runCase, setParams, tid, visibleError,
  waitReady,
} from './lib.mjs';

const EDIT = join(ROOT, 'tests/browser/fixtures/tiny-sd1-mid-to_v-x3.safetensors');
const WRONG = join(ROOT, 'tests/browser/fixtures/tiny-sd1-wrong-shape.safetensors');
// SPM / LoRA fixtures of crates/erasure's parity tests (scripts/reference/spm_reference.py).
const SPM_A = join(ROOT, 'tests/fixtures/reference/spm/sd1_spm_a.safetensors');
const SPM_SD2 = join(ROOT, 'tests/fixtures/reference/spm/sd2_spm.safetensors');
const LORA = join(ROOT, 'tests/fixtures/reference/spm/sd1_lora_r4.safetensors');
export const SHOTS = join(ROOT, 'docs/screenshots');
mkdirSync(SHOTS, { recursive: true });

const P = { ...PARAMS, steps: 6, scheduler: 'ddim' };

async function addEdit(page, file) {
  const before = await page.evaluate(() => window.__studio.edits().length);
  const errBefore = await visibleError(page);
  await page.setInputFiles(tid('edit-input'), file);
  await page.waitForFunction(
    ([n, e0]) => {
      const err = document.querySelector('[data-testid="error"]');
      const t = err && !err.hidden ? err.textContent.replace(/\s+/g, ' ').trim() : null;
      return (window.__studio.edits().length > n && window.__studio.busy() === null) || (t && t !== e0);
    },
    [before, errBefore],
    { timeout: 60_000, polling: 20 },
  );
}

/** The bytes a download link gives, clicked as a user would (the page's policy forbids fetching blob: URLs). */
async function fetchBytes(page, selector) {
  const [download] = await Promise.all([page.waitForEvent('download', { timeout: 30_000 }), page.click(selector)]);
  return readFileSync(await download.path());
}

/** Tensors of two edit files: same names, and the largest difference relative to the CLI's largest value. */
function compareEdits(a, b) {
  const read = (p) => {
    const buf = readFileSync(p);
    const n = Number(buf.readBigUInt64LE(0));
    const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
    const out = {};
    for (const [k, t] of Object.entries(header)) {
      if (k === '__metadata__') continue;
      const [s, e] = t.data_offsets;
      const bytes = buf.subarray(8 + n + s, 8 + n + e);
      out[k] = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    }
    return { tensors: out, meta: header.__metadata__ ?? {} };
  };
  const x = read(a);
  const y = read(b);
  let maxAbs = 0;
  let scale = 0;
  for (const [k, v] of Object.entries(y.tensors)) {
    const w = x.tensors[k];
    if (!w) continue;
    for (let i = 0; i < v.length; i++) {
      maxAbs = Math.max(maxAbs, Math.abs(w[i] - v[i]));
      scale = Math.max(scale, Math.abs(v[i]));
    }
  }
  return {
    sameNames: Object.keys(x.tensors).sort().join(',') === Object.keys(y.tensors).sort().join(','),
    tensors: Object.keys(y.tensors).length,
    maxRel: maxAbs / scale,
    method: x.meta.method,
    sameBase: x.meta.base_model === y.meta.base_model,
  };
}

/** A LEACE eraser file (crates/erasure/src/leace.rs format) of text width `d`, rank 1. */
function writeEraser(path, d) {
  const header = {
    __metadata__: { format: 'erasure-studio-eraser/1', method: 'leace', d_text: String(d), concepts: '["a skull"]', others: '["a star"]', positions: '1..77' },
    proj_left: { dtype: 'F32', shape: [d, 1], data_offsets: [0, 4 * d] },
    proj_right: { dtype: 'F32', shape: [1, d], data_offsets: [4 * d, 8 * d] },
  };
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (json.length % 8)) % 8);
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.length));
  const data = Buffer.from(new Float32Array(2 * d).fill(0.1).buffer);
  writeFileSync(path, Buffer.concat([len, Buffer.from(json), data]));
}

async function mirrorLog(page, url, clear = false) {
  return page.evaluate(async (u) => (await fetch(u, { cache: 'no-store' })).json(), `${url}hub-mirror/_log${clear ? '?clear=1' : ''}`);
}

export async function featureCases({ ctx, url }) {
  await runCase('edits: apply a file, compare, toggle, revert bit for bit, export, refuse a bad file', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, P);
    await page.selectOption(tid('preview-every'), '2');
    const previewsBefore = await page.evaluate(() => window.__studio.events.filter((e) => e.status === 'progress').length);
    await generateAll(page);
    const a = await readCanvas(page, 'image-original');
    assert(a.width === 16 && !(await page.isVisible(tid('image-edited'))), 'a run without edits shows the original only');

    await addEdit(page, EDIT);
    const edits = await page.evaluate(() => window.__studio.edits());
    assert(edits.length === 1 && edits[0].enabled, `edit list ${JSON.stringify(edits)}`);
    const row = await page.textContent(tid('edit-list'));
    assert(/SCALE: star/.test(row) && /1 tensor/.test(row) && !/⚠/.test(row), `edit row ${row}`);

    // Original then edited, with previews every 2 steps.
    await generateAll(page);
    const a2 = await readCanvas(page, 'image-original');
    const b = await readCanvas(page, 'image-edited');
    assert(b.edits === 'e1' && a2.edits === '', `runs used edits ${a2.edits} / ${b.edits}`);
    const changed = countDiff(a, b);
    assert(changed > 100, `the edit changed only ${changed} bytes`);
    assert(countDiff(a, a2) === 0, `the original after applying and reverting the edit differs in ${countDiff(a, a2)} bytes`);
    const diffStats = await page.textContent(tid('diff-stats'));
    const mean = Number(await page.getAttribute(tid('image-diff'), 'data-mean'));
    assert(mean > 0 && /mean \|Δ\|/.test(diffStats), `difference map: ${diffStats}`);
    const progress = await page.evaluate(() => window.__studio.events.filter((e) => e.status === 'progress').length);
    const previews = await page.evaluate(() => window.__studio.previews.length);
    assert(previews >= 4, `expected ≥ 4 previews (2 runs × steps 2, 4), got ${previews}`);
    await page.screenshot({ path: join(OUT, 'compare-tiny.png') });

    // PNG export: parameters in text chunks (the link is made after the image, asynchronously).
    await page.waitForFunction(() => {
      const a = document.querySelector('[data-testid="download-edited"]');
      return !a.hidden && a.href.startsWith('blob:');
    }, null, { timeout: 10_000 });
    const png = await fetchBytes(page, tid('download-edited'));
    const text = pngText(png);
    assert(text.prompt === P.prompt && text.seed === String(P.seed) && text.steps === String(P.steps) && text.scheduler === 'ddim', `PNG text ${JSON.stringify(text)}`);
    assert(text.guidance === String(P.guidance) && text.negative_prompt === P.negativePrompt && /Tiny SD-1/.test(text.model), `PNG text ${JSON.stringify(text)}`);
    assert(JSON.parse(text.edits)[0].file === 'tiny-sd1-mid-to_v-x3.safetensors' && /Steps: 6, Sampler: ddim/.test(text.parameters), `PNG edits ${text.edits}`);

    // Toggle off: the original only, bit for bit; on again: the edited image bit for bit.
    await page.click(tid('edit-toggle-0'));
    await generateAll(page);
    const a3 = await readCanvas(page, 'image-original');
    assert(countDiff(a, a3) === 0 && !(await page.isVisible(tid('image-edited'))), 'with the edit off the original must come back exactly');
    await page.click(tid('edit-toggle-0'));
    await generateAll(page);
    const b2 = await readCanvas(page, 'image-edited');
    assert(countDiff(b, b2) === 0, `re-applying the edit gave a different image (${countDiff(b, b2)} bytes)`);

    // Export the edit file: the same bytes as added.
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(tid('edit-export-0'))]);
    const exported = readFileSync(await dl.path());
    assert(exported.equals(readFileSync(EDIT)), 'the exported edit file differs from the file added');

    // A file of the wrong shape: refused with its reason; the model and the other edit are intact.
    await addEdit(page, WRONG);
    const err = await visibleError(page);
    assert(err && /shape \[8, 768\]/.test(err) && /\[64, 32\]/.test(err) && /SD 1\.x/.test(err), `error ${err}`);
    assert((await page.evaluate(() => window.__studio.edits().length)) === 1, 'a refused file must not be listed');
    await generateAll(page);
    assert(countDiff(a, await readCanvas(page, 'image-original')) === 0 && countDiff(b, await readCanvas(page, 'image-edited')) === 0, 'a refused edit changed the model');

    // A closed-form edit computed in the page: a bad hyper-parameter is refused with the known
    // names; UCE then gives the CLI's edit (same request, `studio erase`) up to WebGPU rounding.
    await page.selectOption(tid('erase-method'), 'uce');
    await page.fill(tid('erase-concepts'), 'a red star');
    await page.fill(tid('erase-params'), 'lambda=1');
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => /unknown hyper-parameter `lambda`/.test(document.querySelector('[data-testid="error"]').textContent), null, { timeout: 30_000 });
    await page.fill(tid('erase-params'), 'lamb=0.5');
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 2 && window.__studio.busy() === null, null, { timeout: 120_000, polling: 50 });
    const eraseTime = await page.textContent(tid('erase-time'));
    assert(/UCE computed in/.test(eraseTime), `erase time ${eraseTime}`);
    const uceId = (await page.evaluate(() => window.__studio.edits()))[1].id;
    const uceRow = await page.textContent(`[data-testid="edit-row"][data-id="${uceId}"]`);
    assert(/UCE: a red star/.test(uceRow), `UCE row ${uceRow}`);
    const [dl2] = await Promise.all([page.waitForEvent('download'), page.click(tid('edit-export-1'))]);
    const browserEdit = await dl2.path();
    let vsCli = null;
    if (existsSync(CLI) && /erase/.test(execFileSync(CLI, ['--help'], { encoding: 'utf8' }))) {
      const cliEdit = join(OUT, 'cli-uce-red-star.safetensors');
      execFileSync(CLI, ['erase', '--model', FIXTURE, '--method', 'uce', '--concepts', 'a red star', '--lamb', '0.5', '--out', cliEdit], { stdio: 'ignore' });
      vsCli = compareEdits(browserEdit, cliEdit);
      assert(vsCli.sameNames && vsCli.tensors > 0 && vsCli.sameBase && vsCli.maxRel <= 1e-5, `browser UCE vs CLI: ${JSON.stringify(vsCli)}`);
    } else {
      log('NOTE: the CLI has no `erase`: the browser UCE edit is not compared with it');
    }
    // Only the UCE edit on: the edited image differs from the original.
    await page.click(tid('edit-toggle-0'));
    await generateAll(page);
    const u = await readCanvas(page, 'image-edited');
    assert(u.edits === uceId && countDiff(a, u) > 50 && countDiff(a, await readCanvas(page, 'image-original')) === 0, 'the UCE edit did not change the image, or the original changed');
    await page.screenshot({ path: join(OUT, 'compare-uce-tiny.png') });
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    return { changedBytes: changed, diffMean: mean, previews, progressEvents: progress - previewsBefore, pngKeys: Object.keys(text).length, eraseTime, uceVsCli: vsCli };
  });

  await runCase('adapters and steering: SPM = studio generate --spm (FT on and off), detach exact, SLD = --sld, bad files refused', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, P);
    await generateAll(page);
    const a = await readCanvas(page, 'image-original');
    const haveCli = existsSync(CLI);
    const r = { tolerance: TOL_WEBGPU };

    // An SPM dropped in (here through the picker; the drop zone takes the same path): listed
    // as an SPM variant, on; the edited image equals the CLI's with Facilitated Transport.
    await addEdit(page, SPM_A);
    let entries = await page.evaluate(() => window.__studio.edits());
    assert(entries.length === 1 && entries[0].enabled, `entries ${JSON.stringify(entries)}`);
    const row = await page.textContent(tid('edit-list'));
    assert(/SPM: snoopy, mickey mouse/.test(row) && /72 layers, rank 1/.test(row), `SPM row ${row}`);
    assert(await page.isVisible(tid('ft')), 'the Facilitated Transport switch shows with an SPM listed');
    await generateAll(page);
    const spm = await readCanvas(page, 'image-edited');
    const a2 = await readCanvas(page, 'image-original');
    assert(spm.edits === entries[0].id, `the edited run used ${spm.edits}`);
    r.spmChangedBytes = countDiff(a, spm);
    assert(r.spmChangedBytes > 50, `the SPM changed only ${r.spmChangedBytes} bytes`);
    assert(countDiff(a, a2) === 0, `the original after detaching the SPM differs in ${countDiff(a, a2)} bytes`);
    r.permeability = await page.textContent('#note-edited');
    assert(/SPM m = 0\.\d\d/.test(r.permeability), `edited note ${r.permeability}`);
    if (haveCli) {
      r.spmVsCli = maxDiff(spm, cliImage(P, FIXTURE, ['--spm', SPM_A], '-spm-a')).max;
      assert(r.spmVsCli <= TOL_WEBGPU, `SPM in the page vs studio generate --spm: max |Δ| ${r.spmVsCli}`);
    }
    // Facilitated Transport off: the SPM applies fully, as --no-ft.
    await page.click(tid('ft'));
    await generateAll(page);
    const noft = await readCanvas(page, 'image-edited');
    assert(countDiff(noft, spm) > 0, 'turning Facilitated Transport off changed nothing');
    if (haveCli) {
      r.noFtVsCli = maxDiff(noft, cliImage(P, FIXTURE, ['--spm', SPM_A, '--no-ft'], '-spm-a-noft')).max;
      assert(r.noFtVsCli <= TOL_WEBGPU, `SPM without FT vs studio generate --spm --no-ft: max |Δ| ${r.noFtVsCli}`);
    }
    await page.click(tid('ft'));
    // Toggled off: the original only, bit for bit.
    await page.click(tid('edit-toggle-0'));
    await generateAll(page);
    assert(countDiff(a, await readCanvas(page, 'image-original')) === 0 && !(await page.isVisible(tid('image-edited'))), 'with the SPM off the original must come back exactly');

    // Bad adapter files: a clear message naming the file / tensor / shapes; nothing is listed.
    const cut = join(OUT, 'spm-cut.safetensors');
    const bytes = readFileSync(SPM_A);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
    await addEdit(page, cut);
    r.truncatedError = await visibleError(page);
    assert(/spm-cut\.safetensors/.test(r.truncatedError) && /truncated/.test(r.truncatedError), `truncated SPM: ${r.truncatedError}`);
    await addEdit(page, SPM_SD2);
    r.wrongArchError = await visibleError(page);
    assert(/attn2_to_k\.lora_down\.weight/.test(r.wrongArchError) && /\[1, 48\]/.test(r.wrongArchError) && /\[1, 32\]/.test(r.wrongArchError) && /sd2_spm\.safetensors/.test(r.wrongArchError), `SD-2 SPM on SD-1: ${r.wrongArchError}`);
    assert((await page.evaluate(() => window.__studio.edits().length)) === 1, 'a refused adapter must not be listed');
    await page.screenshot({ path: join(OUT, 'adapter-error.png') });

    // A plain LoRA: listed as LoRA; the next generation still works and the original is intact.
    await addEdit(page, LORA);
    entries = await page.evaluate(() => window.__studio.edits());
    assert(entries.length === 2 && /LoRA: sd1_lora_r4\.safetensors/.test(await page.textContent(tid('edit-list'))), `LoRA entries ${JSON.stringify(entries)}`);
    await generateAll(page);
    const lora = await readCanvas(page, 'image-edited');
    assert(countDiff(a, await readCanvas(page, 'image-original')) === 0 && countDiff(a, lora) > 0, 'after refused files the page must still generate (original exact, LoRA changes the image)');
    await page.click(tid('edit-toggle-1'));

    // SLD in the page: a steering variant, equal to studio generate --sld (preset max: no
    // warm-up, so the 6 steps are all steered).
    await page.selectOption(tid('erase-method'), 'sld');
    await page.fill(tid('erase-concepts'), '');
    await page.fill(tid('erase-params'), 'preset=extreme');
    await page.click(tid('erase-apply'));
    const sldErr = await visibleError(page);
    assert(/unknown SLD preset `extreme`/.test(sldErr ?? ''), `bad preset: ${sldErr}`);
    await page.fill(tid('erase-params'), 'preset=max');
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 3 && window.__studio.busy() === null, null, { timeout: 30_000, polling: 20 });
    assert(/SLD max: the official unsafe-concept list/.test(await page.textContent(tid('edit-list'))), 'SLD row');
    await generateAll(page);
    const sld = await readCanvas(page, 'image-edited');
    assert(countDiff(a, await readCanvas(page, 'image-original')) === 0, 'SLD must not touch the original run');
    r.sldChangedBytes = countDiff(a, sld);
    assert(r.sldChangedBytes > 50, `SLD changed only ${r.sldChangedBytes} bytes`);
    if (haveCli) {
      r.sldVsCli = maxDiff(sld, cliImage(P, FIXTURE, ['--sld', 'max'], '-sld-max')).max;
      assert(r.sldVsCli <= TOL_WEBGPU, `SLD in the page vs studio generate --sld max: max |Δ| ${r.sldVsCli}`);
    }
    // SAFREE in the page: prepared with asynchronous read-backs on WebGPU, equal to
    // studio generate --safree (all steps, a low trigger margin so tokens are projected).
    await page.click(tid('edit-toggle-2'));
    await page.selectOption(tid('erase-method'), 'safree');
    await page.fill(tid('erase-concepts'), ' ; ');
    await page.fill(tid('erase-params'), '');
    await page.click(tid('erase-apply'));
    const safreeErr = await visibleError(page);
    assert(/at least one keyword/.test(safreeErr ?? ''), `SAFREE without keywords: ${safreeErr}`);
    await page.fill(tid('erase-concepts'), 'red star; star');
    await page.fill(tid('erase-params'), 'alpha=-0.5, all_steps=true');
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 4 && window.__studio.busy() === null, null, { timeout: 30_000, polling: 20 });
    assert(/SAFREE: red star, star/.test(await page.textContent(tid('edit-list'))), 'SAFREE row');
    await generateAll(page);
    const safree = await readCanvas(page, 'image-edited');
    assert(countDiff(a, await readCanvas(page, 'image-original')) === 0, 'SAFREE must not touch the original run');
    r.safreeChangedBytes = countDiff(a, safree);
    assert(r.safreeChangedBytes > 50, `SAFREE changed only ${r.safreeChangedBytes} bytes`);
    r.safreeNote = (await page.textContent(tid('status'))).match(/SAFREE: [^.]*/)?.[0];
    assert(/SAFREE: \d+ of \d+ tokens are triggers/.test(r.safreeNote ?? ''), `the status does not say what SAFREE did: ${await page.textContent(tid('status'))}`);
    if (haveCli) {
      r.safreeVsCli = maxDiff(safree, cliImage(P, FIXTURE, ['--safree', 'red star;star', '--safree-alpha=-0.5', '--safree-all-steps'], '-safree')).max;
      assert(r.safreeVsCli <= TOL_WEBGPU, `SAFREE in the page vs studio generate --safree: max |Δ| ${r.safreeVsCli}`);
    }
    await page.screenshot({ path: join(OUT, 'variants-tiny.png') });
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    return r;
  });

  await runCase('embedding erasers: LEACE fitted in the page = studio generate --leace on its export, Ring-A-Bell = --ring-a-bell, eraser files dropped and refused', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, P);
    await generateAll(page);
    const a = await readCanvas(page, 'image-original');
    const haveCli = existsSync(CLI);
    const r = { tolerance: TOL_WEBGPU };
    const concepts = 'a red star; a big red star; a photo of a red star; a red star on a striped background';
    const others = 'a blue circle; a big green square; a photo of a moon; a yellow circle on a striped background';
    const edits = () => page.evaluate(() => window.__studio.edits().length);

    // LEACE fitted in the page: without other prompts it is refused with what to give.
    await page.selectOption(tid('erase-method'), 'leace');
    assert(await page.isVisible(tid('erase-others')), 'the other-prompts field shows for LEACE');
    await page.fill(tid('erase-concepts'), concepts);
    await page.fill(tid('erase-others'), ' ; ');
    await page.fill(tid('erase-params'), '');
    await page.click(tid('erase-apply'));
    r.noOthersError = await visibleError(page);
    assert(/LEACE needs other prompts/.test(r.noOthersError ?? ''), `LEACE without other prompts: ${r.noOthersError}`);
    await page.fill(tid('erase-others'), others);
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 1 && window.__studio.busy() === null, null, { timeout: 120_000, polling: 20 });
    r.fitTime = await page.textContent(tid('erase-time'));
    assert(/LEACE fitted in/.test(r.fitTime), `erase time ${r.fitTime}`);
    r.leaceRow = await page.textContent(tid('edit-list'));
    assert(/LEACE: a red star, a big red star/.test(r.leaceRow) && /rank \d+ of 32/.test(r.leaceRow), `LEACE row ${r.leaceRow}`);
    await generateAll(page);
    const leace = await readCanvas(page, 'image-edited');
    assert(countDiff(a, await readCanvas(page, 'image-original')) === 0, 'LEACE must not touch the original run');
    r.leaceChangedBytes = countDiff(a, leace);
    assert(r.leaceChangedBytes > 50, `LEACE changed only ${r.leaceChangedBytes} bytes`);
    assert(/LEACE eraser applied to the prompt's tokens/.test(await page.textContent(tid('status'))), 'the status says the eraser was applied');
    // Its export is what `studio generate --leace` reads.
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(tid('edit-export-0'))]);
    const exported = join(OUT, 'page-leace.safetensors');
    writeFileSync(exported, readFileSync(await dl.path()));
    if (haveCli) {
      r.leaceVsCli = maxDiff(leace, cliImage(P, FIXTURE, ['--leace', exported], '-page-leace')).max;
      assert(r.leaceVsCli <= TOL_WEBGPU, `LEACE in the page vs studio generate --leace (its export): max |Δ| ${r.leaceVsCli}`);
      // The same fit by the CLI (ndarray text encoder instead of WebGPU's): reported, not asserted.
      const cliFit = join(OUT, 'cli-leace.safetensors');
      execFileSync(CLI, ['fit-eraser', '--model', FIXTURE, '--method', 'leace', '--concept-prompts', concepts, '--other-prompts', others, '--out', cliFit], { stdio: 'ignore' });
      r.leaceVsCliFit = maxDiff(leace, cliImage(P, FIXTURE, ['--leace', cliFit], '-cli-leace')).max;
    }

    // Ring-A-Bell: a pair without "|" is named; then the probe alone, then with the eraser.
    await page.click(tid('edit-toggle-0'));
    await page.selectOption(tid('erase-method'), 'ring-a-bell');
    assert(!(await page.isVisible(tid('erase-others'))), 'the other-prompts field hides for Ring-A-Bell');
    await page.fill(tid('erase-concepts'), 'a red star|a blue circle; a big red star');
    await page.fill(tid('erase-params'), 'eta=0.9');
    await page.click(tid('erase-apply'));
    r.badPairError = await visibleError(page);
    assert(/pair `a big red star` has no `\|`/.test(r.badPairError ?? ''), `bad pair: ${r.badPairError}`);
    const pairs = 'a red star|a blue circle; a big red star|a big blue circle';
    await page.fill(tid('erase-concepts'), pairs);
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 2 && window.__studio.busy() === null, null, { timeout: 120_000, polling: 20 });
    assert(/Ring-A-Bell η = 0.9: a red star, a big red star/.test(await page.textContent(tid('edit-list'))), 'Ring-A-Bell row');
    await generateAll(page);
    const rab = await readCanvas(page, 'image-edited');
    r.rabChangedBytes = countDiff(a, rab);
    assert(r.rabChangedBytes > 50 && countDiff(a, await readCanvas(page, 'image-original')) === 0, `Ring-A-Bell changed ${r.rabChangedBytes} bytes, or touched the original`);
    const rabFlags = ['--ring-a-bell', pairs, '--ring-a-bell-eta', '0.9'];
    if (haveCli) {
      r.rabVsCli = maxDiff(rab, cliImage(P, FIXTURE, rabFlags, '-rab')).max;
      assert(r.rabVsCli <= TOL_WEBGPU, `Ring-A-Bell in the page vs studio generate --ring-a-bell: max |Δ| ${r.rabVsCli}`);
    }
    await page.click(tid('edit-toggle-0'));
    await generateAll(page);
    const both = await readCanvas(page, 'image-edited');
    assert(both.edits.split(',').length === 2 && countDiff(both, rab) > 0 && countDiff(both, leace) > 0, 'LEACE + Ring-A-Bell must combine');
    if (haveCli) {
      r.bothVsCli = maxDiff(both, cliImage(P, FIXTURE, ['--leace', exported, ...rabFlags], '-leace-rab')).max;
      assert(r.bothVsCli <= TOL_WEBGPU, `LEACE + Ring-A-Bell vs studio generate --leace --ring-a-bell: max |Δ| ${r.bothVsCli}`);
    }

    // The exported eraser dropped back in (the picker takes the drop zone's path): a LEACE row,
    // the same image bit for bit.
    await page.click(tid('edit-toggle-0'));
    await page.click(tid('edit-toggle-1'));
    await addEdit(page, exported);
    assert((await edits()) === 3 && /LEACE: a red star/.test(await page.textContent(`[data-testid="edit-row"]:nth-child(3)`)), 'the eraser file is listed as LEACE');
    await generateAll(page);
    r.droppedVsFitted = countDiff(leace, await readCanvas(page, 'image-edited'));
    assert(r.droppedVsFitted === 0, `the dropped eraser gave another image (${r.droppedVsFitted} bytes)`);

    // Bad eraser files: refused with the file and the reason; nothing listed; the page still works.
    const wide = join(OUT, 'eraser-width-48.safetensors');
    writeEraser(wide, 48);
    await addEdit(page, wide);
    r.wideError = await visibleError(page);
    assert(/eraser-width-48\.safetensors/.test(r.wideError ?? '') && /text width 48/.test(r.wideError) && /text width 32/.test(r.wideError), `wide eraser: ${r.wideError}`);
    const cut = join(OUT, 'eraser-cut.safetensors');
    const bytes = readFileSync(exported);
    writeFileSync(cut, bytes.subarray(0, bytes.length - 40));
    await addEdit(page, cut);
    r.cutError = await visibleError(page);
    assert(/eraser-cut\.safetensors/.test(r.cutError ?? '') && /not a valid eraser file/.test(r.cutError), `cut eraser: ${r.cutError}`);
    assert((await edits()) === 3, 'a refused eraser must not be listed');
    await generateAll(page);
    assert(countDiff(leace, await readCanvas(page, 'image-edited')) === 0 && countDiff(a, await readCanvas(page, 'image-original')) === 0, 'after refused files the page must still generate the same images');
    await page.screenshot({ path: join(OUT, 'erasers-tiny.png') });
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    return r;
  });

  await runCase('grid: prompts × variants', async () => {
    const { page } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    await setParams(page, { ...P, steps: 3 });
    await page.selectOption(tid('preview-every'), '0');
    await addEdit(page, EDIT);
    await page.check(tid('view-grid'));
    await page.fill(tid('grid-prompts'), 'a red star\na blue circle');
    await generateAll(page);
    const cells = {};
    for (const r of [0, 1]) for (const c of [0, 1]) cells[`${r}${c}`] = await readCanvas(page, `grid-cell-${r}-${c}`).catch(() => null);
    const missing = await page.evaluate(() => document.querySelectorAll('[data-testid^="grid-cell-"] canvas').length);
    assert(missing === 4, `expected 2 prompts × 2 variants, got ${missing} cells`);
    for (const r of [0, 1]) assert(countDiff(cells[`${r}0`], cells[`${r}1`]) > 50, `row ${r}: the edited cell equals the original`);
    assert(countDiff(cells['00'], cells['10']) > 50, 'two prompts gave the same image');
    const heads = await page.$$eval('.grid-view .gh', (h) => h.map((x) => x.textContent));
    assert(heads.join('|') === 'Original|SCALE: star', `grid columns ${heads}`);
    await page.screenshot({ path: join(OUT, 'grid-tiny.png') });
    await page.close();
    return { columns: heads };
  });

  await runCase('share URL: every setting round-trips and reproduces the image', async () => {
    const { page } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await waitReady(page);
    const S = { prompt: 'a skull & a "flag" #2', negativePrompt: 'blurry, café', seed: 987654321, steps: 4, guidance: 5.5, size: 16, scheduler: 'euler' };
    await setParams(page, S);
    await page.selectOption(tid('preview-every'), '10');
    await page.selectOption(tid('erase-method'), 'rece');
    await page.fill(tid('erase-concepts'), 'skull; pirate flag');
    await page.fill(tid('erase-preserve'), 'red circle');
    await generateAll(page);
    const img = await readCanvas(page, 'image-original');
    await page.click(tid('share'));
    const link = await page.inputValue(tid('share-url'));
    assert(link.includes('#') && !/rgba|data:/.test(link) && link.length < 2000, `share link ${link}`);
    await page.close();

    const { page: p2 } = await openPage(ctx, link);
    await waitReady(p2);
    const got = {
      model: await p2.inputValue(tid('model-select')),
      prompt: await p2.inputValue(tid('prompt')),
      negativePrompt: await p2.inputValue(tid('negative-prompt')),
      seed: await p2.inputValue(tid('seed')),
      steps: await p2.inputValue(tid('steps')),
      guidance: await p2.inputValue(tid('guidance')),
      size: await p2.inputValue(tid('size')),
      scheduler: await p2.inputValue(tid('scheduler')),
      previewEvery: await p2.inputValue(tid('preview-every')),
      method: await p2.inputValue(tid('erase-method')),
      concepts: await p2.inputValue(tid('erase-concepts')),
      preserve: await p2.inputValue(tid('erase-preserve')),
    };
    const want = { model: 'tiny-sd1', ...S, seed: String(S.seed), steps: String(S.steps), guidance: String(S.guidance), size: String(S.size), previewEvery: '10', method: 'rece', concepts: 'skull; pirate flag', preserve: 'red circle' };
    assert(JSON.stringify(got) === JSON.stringify(want), `restored ${JSON.stringify(got)}\nexpected ${JSON.stringify(want)}`);
    await generateAll(p2);
    const again = await readCanvas(p2, 'image-original');
    assert(countDiff(img, again) === 0, 'the shared link did not reproduce the image');
    await p2.close();
    return { linkLength: link.length };
  });

  await runCase('hub: download from a local mirror, resume after a reload, verify, cache, clear', async () => {
    const slow = `${url}?backend=webgpu&hub=${encodeURIComponent(`${url}hub-mirror/slow`)}`;
    const { page } = await openPage(ctx, slow);
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    await mirrorLog(page, url, true);
    // A repo that does not exist: a clear message, the loaded model stays.
    await page.selectOption(tid('model-select'), 'hub:other');
    await page.fill(tid('hub-repo'), 'erasure-studio/nope');
    await page.click(tid('hub-download'));
    await page.waitForFunction(() => /does not exist/.test(document.querySelector('[data-testid="error"]').textContent), null, { timeout: 30_000 });
    assert(await page.evaluate(() => window.__studio.ready()), 'a failed hub listing dropped the loaded model');

    await page.fill(tid('hub-repo'), 'erasure-studio/tiny-sd1');
    await page.click(tid('hub-download'));
    // Interrupt the UNet download half way by reloading the page.
    await page.waitForFunction(
      () => {
        const li = document.querySelector('[data-testid="download-list"] li[data-path="unet/diffusion_pytorch_model.safetensors"]');
        return li && li.dataset.state === 'downloading' && /^([1-9][\d.]*) MB \//.test(li.querySelector('.meta').textContent);
      },
      null,
      { timeout: 60_000, polling: 20 },
    );
    const rows = await page.$$eval('[data-testid="download-list"] li', (l) => l.map((x) => `${x.dataset.path}: ${x.querySelector('.meta').textContent}`));
    await page.screenshot({ path: join(OUT, 'hub-download.png') });
    await page.reload();
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    await page.selectOption(tid('model-select'), 'hub:other');
    await page.fill(tid('hub-repo'), 'erasure-studio/tiny-sd1');
    await page.click(tid('hub-download'));
    await page.waitForFunction(() => window.__studio.ready() && /tiny-sd1/.test(document.querySelector('[data-testid="model-info"]').textContent), null, {
      timeout: 120_000,
    });
    const log1 = await mirrorLog(page, url, true);
    const unet = log1.filter((r) => r.path.endsWith('unet/diffusion_pytorch_model.safetensors'));
    const resumed = unet.find((r) => r.range && r.status === 206);
    assert(resumed, `no Range request resumed the UNet: ${JSON.stringify(log1)}`);
    const states = await page.$$eval('[data-testid="download-list"] li', (l) => l.map((x) => x.dataset.state));
    assert(states.includes('cached') && states.every((s) => s === 'cached' || s === 'done'), `file states after resume ${states}`);
    const verified = await page.$$eval('[data-testid="download-list"] li', (l) => l.filter((x) => /SHA-256 ✓/.test(x.textContent)).length);
    assert(verified === 3, `expected the 3 weight files SHA-256-verified, got ${verified}`);
    await setParams(page, P);
    await page.selectOption(tid('preview-every'), '0');
    await generateAll(page);
    const fromHub = await readCanvas(page, 'image-original');
    await page.screenshot({ path: join(OUT, 'hub-loaded.png') });

    // After another reload (fast endpoint, same host): everything from the cache, no download.
    await page.goto(`${url}?backend=webgpu&hub=${encodeURIComponent(`${url}hub-mirror`)}`);
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    await mirrorLog(page, url, true);
    await page.selectOption(tid('model-select'), 'hub:other');
    await page.fill(tid('hub-repo'), 'erasure-studio/tiny-sd1');
    await page.click(tid('hub-download'));
    await page.waitForFunction(() => window.__studio.ready() && /tiny-sd1/.test(document.querySelector('[data-testid="model-info"]').textContent), null, { timeout: 120_000 });
    const log2 = await mirrorLog(page, url, true);
    const downloads = log2.filter((r) => r.path.includes('/resolve/'));
    assert(downloads.length === 0, `a cached model was downloaded again: ${JSON.stringify(downloads)}`);
    const cachedStates = await page.$$eval('[data-testid="download-list"] li', (l) => l.map((x) => x.dataset.state));
    assert(cachedStates.length === 12 && cachedStates.every((s) => s === 'cached'), `states ${cachedStates}`);

    // The same weights as the bundled copy: the same image.
    await page.selectOption(tid('model-select'), 'tiny-sd1');
    await waitReady(page);
    await setParams(page, P);
    await page.selectOption(tid('preview-every'), '0');
    await generateAll(page);
    assert(countDiff(fromHub, await readCanvas(page, 'image-original')) === 0, 'the hub copy and the bundled copy gave different images');

    // Cache inspect and clear.
    await page.click(tid('cache-open'));
    await page.waitForSelector('[data-testid="cache-row"]', { timeout: 10_000 });
    const cacheRow = await page.textContent('[data-testid="cache-row"]');
    assert(/erasure-studio\/tiny-sd1@main/.test(cacheRow) && /12\/12 files, 3 SHA-256-verified/.test(cacheRow), `cache row ${cacheRow}`);
    await page.screenshot({ path: join(OUT, 'hub-cache.png') });
    await page.click(tid('cache-clear'));
    await page.waitForFunction(() => /Nothing downloaded yet/.test(document.querySelector('[data-testid="cache-panel"]').textContent), null, { timeout: 10_000 });
    await page.close();
    return { beforeReload: rows, resumedWith: resumed.range, cacheRow };
  });
}
