// The teaching views (issue 15) in headless Chromium, on WebGPU (SwiftShader here):
//  - attention maps (DAAM): the page's maps for the tiny SD-1 fixture equal `studio attention`'s
//    (safetensors `maps`), their sums are what DAAM defines, the image is unchanged by recording,
//    the per-word IoU equals the CLI's; a chosen step window and resolution give the maps of
//    `studio attention --attention-steps --attention-factors`, a window past the run is refused;
//  - the denoising timeline: one decoded x̂₀ a step, the last one the image, a scrubber;
//  - the flagship demo with maps: the classroom model, UCE on "skull" from the erase form, the
//    original and edited maps side by side, a click on a word shows its map; the skull word's IoU
//    with the object is reported for both.
//  - what it does: UCE on the classroom model from the erase form, its row's Explain: the equation
//    (MathML, bound to the run's concepts and λ) and the anatomy, whose norms, ranks and key
//    cosines equal `studio anatomy --json` on the exported edit file; SLD's equation with its preset and, after a run, its guidance terms per step (‖γ‖/‖ε_p − ε_u‖, μ's coverage) equal to `studio generate --sld-terms`.
// Run by studio.mjs (`teachingCases`).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLASSROOM, CLI, FIXTURE, OUT, assert, generateAll, openPage, readCanvas, readSafetensors, runCase, setParams, tid, visibleError } from './lib.mjs';

/** The tiny fixture's settings (its native 16 px, 2× VAE: 8×8 maps). */
const TINY = { prompt: 'a big red star on a blue striped background', negativePrompt: '', seed: 7, steps: 6, guidance: 7.5, size: 16, scheduler: 'ddim' };
/** WebGPU sums in another order than ndarray: the maps agree to ~4e-7 (measured); the CPU path runs the same kernels. */
const TOL_MAPS = 1e-4;

/** `studio attention` for `p`: the maps, their shape and the metadata. */
function cliAttention(model, p, tag, extra = []) {
  const maps = join(OUT, `cli-attention-${tag}.safetensors`);
  execFileSync(
    CLI,
    ['attention', '--model', model, '--prompt', p.prompt, '--negative-prompt', p.negativePrompt, '--steps', String(p.steps), '--guidance', String(p.guidance), '--scheduler', p.scheduler,
      '--height', String(p.size), '--width', String(p.size), '--seed', String(p.seed), '--out', join(OUT, `cli-attention-${tag}.png`), '--maps', maps, '--png-dir', join(OUT, `cli-attention-${tag}`), ...extra],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const { shape, data } = readSafetensors(maps, 'maps');
  const buf = readFileSync(maps);
  const n = Number(buf.readBigUInt64LE(0));
  const meta = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')).__metadata__;
  return { shape, data, tokens: JSON.parse(meta.tokens), words: JSON.parse(meta.words), iou: JSON.parse(meta.iou), steps: Number(meta.steps) };
}

/** `studio anatomy --json` of an edit file. */
function cliAnatomy(model, edit) {
  return JSON.parse(execFileSync(CLI, ['anatomy', '--model', model, '--edit', edit, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] }).toString('utf8'));
}

/** Computes an erase-form entry and waits for it. */
async function computeEntry(page, method, concepts, extra = {}) {
  const before = await page.evaluate(() => window.__studio.edits().length);
  await page.selectOption(tid('erase-method'), method);
  await page.fill(tid('erase-concepts'), concepts);
  for (const [k, v] of Object.entries(extra)) await page.fill(tid(k), v);
  await page.click(tid('erase-apply'));
  await page.waitForFunction((n) => window.__studio.edits().length === n + 1 && window.__studio.busy() === null, before, { timeout: 120_000, polling: 50 });
}

async function attentionOf(page, kind) {
  return page.evaluate((k) => window.__studio.attention(k), kind);
}

export async function teachingCases({ ctx, url }) {
  await runCase('attention maps: the page equals `studio attention` (tiny SD-1, WebGPU)', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=tiny-sd1&backend=webgpu`);
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    await setParams(page, TINY);
    await page.selectOption(tid('preview-every'), '0');
    await generateAll(page);
    await generateAll(page); // without the first run's shader compilations
    const plain = await readCanvas(page, 'image-original');
    assert(!(await page.isVisible(tid('attention'))), 'the maps show without being asked for');
    await page.check(tid('attention-maps'));
    await generateAll(page);
    // A second run with maps: its cost without the first run's shader compilations (the README's figure).
    await generateAll(page);
    const times = await page.evaluate(() => window.__studio.timings.map((t) => t.totalMs));
    const img = await readCanvas(page, 'image-original');
    assert(img.rgba.every((v, i) => v === plain.rgba[i]), 'recording the attention maps changed the image');
    const a = await attentionOf(page, 'original');
    assert(a, 'no attention maps in the page');
    assert(await page.isVisible(tid('attention')), 'the attention view is hidden');
    const cli = cliAttention(FIXTURE, TINY, 'tiny');
    assert(JSON.stringify(a.tokens) === JSON.stringify(cli.tokens), `tokens ${a.tokens} vs ${cli.tokens}`);
    assert(JSON.stringify(a.words) === JSON.stringify(cli.words), 'words differ');
    assert(cli.shape.join() === [a.tokens.length, a.height, a.width].join(), `shape ${cli.shape} vs ${a.tokens.length}×${a.height}×${a.width}`);
    let max = 0;
    for (let i = 0; i < cli.data.length; i++) max = Math.max(max, Math.abs(cli.data[i] - a.maps[i]));
    assert(max <= TOL_MAPS, `page vs CLI maps: max |Δ| ${max} > ${TOL_MAPS}`);
    // DAAM's sums: every softmax row sums to 1 over the 77 tokens, so the prompt's rows sum to at most `steps` (+ the clamp's undershoot fix).
    const n = a.height * a.width;
    let maxSum = 0;
    for (let p = 0; p < n; p++) {
      let s = 0;
      for (let t = 0; t < a.tokens.length; t++) s += a.maps[t * n + p];
      maxSum = Math.max(maxSum, s);
    }
    assert(maxSum <= a.steps * 1.05 && maxSum > 0.1, `Σ of the prompt's rows ${maxSum}, steps ${a.steps}`);
    const iouDiff = Math.max(...a.scores.map((s, i) => Math.abs((s.iou ?? -1) - (cli.iou[i].iou ?? -1))));
    assert(iouDiff <= 0.02, `IoU page vs CLI differs by ${iouDiff}`);
    assert((await page.$$(tid('attention-token'))).length === a.words.length, 'one button a word');

    // Choose steps 2–4 and the 8×8 layers only (factor 1; the mid block's 4×4 off): the page's maps equal
    // `studio attention --attention-steps 2-4 --attention-factors 1`, the image is unchanged, and they differ from all steps' and layers'.
    const boxes = await page.$$eval(tid('attention-resolution'), (bs) => bs.map((b) => ({ factor: Number(b.dataset.factor), checked: b.checked })));
    assert(JSON.stringify(boxes) === JSON.stringify([{ factor: 1, checked: true }, { factor: 2, checked: true }]), `resolutions ${JSON.stringify(boxes)}`);
    assert((await page.inputValue(tid('attention-steps-first'))) === '0' && (await page.inputValue(tid('attention-steps-last'))) === String(TINY.steps - 1), 'the window starts as the whole run');
    await page.fill(tid('attention-steps-first'), '2');
    await page.fill(tid('attention-steps-last'), '4');
    await page.uncheck('[data-testid="attention-resolution"][data-factor="2"]');
    await generateAll(page, 300_000, 'attention-apply');
    const chosen = await attentionOf(page, 'original');
    const img3 = await readCanvas(page, 'image-original');
    assert(img3.rgba.every((v, i) => v === plain.rgba[i]), 'choosing steps and layers changed the image');
    assert(chosen.steps === 3 && chosen.stepWindow.join() === '2,4' && chosen.resolutions.map((r) => r.selected).join() === 'true,false', `chosen maps: ${chosen.steps} steps ${chosen.stepWindow} ${JSON.stringify(chosen.resolutions)}`);
    const cliChosen = cliAttention(FIXTURE, TINY, 'tiny-chosen', ['--attention-steps', '2-4', '--attention-factors', '1']);
    let chosenMax = 0;
    let fromAll = 0;
    for (let i = 0; i < cliChosen.data.length; i++) {
      chosenMax = Math.max(chosenMax, Math.abs(cliChosen.data[i] - chosen.maps[i]));
      fromAll = Math.max(fromAll, Math.abs(a.maps[i] - chosen.maps[i]));
    }
    assert(chosenMax <= TOL_MAPS && fromAll > 1e-3, `chosen maps: page vs CLI ${chosenMax}, vs all steps and layers ${fromAll}`);
    assert((await page.textContent('#attention-note')).includes('steps 2–4 of 6, the layers at 8×8 only'), 'the note says what the maps hold');
    // A window past the run: a message at the control, nothing runs.
    await page.fill(tid('attention-steps-last'), '9');
    const runsBefore = await page.evaluate(() => window.__studio.timings.length);
    await page.click(tid('attention-apply'));
    assert((await page.textContent(tid('attention-choice-error'))).includes('numbered 0 to 5'), 'no message for a window past the run');
    assert((await page.evaluate(() => window.__studio.timings.length)) === runsBefore, 'a refused choice ran anyway');
    await page.locator(tid('attention')).screenshot({ path: join(OUT, 'teaching-attention-choice.png') });
    await generateAll(page, 300_000, 'attention-reset');
    const reset = await attentionOf(page, 'original');
    assert(reset.steps === TINY.steps && reset.resolutions.every((r) => r.selected), 'the reset maps are all steps and layers');

    // The denoising timeline: one x̂₀ a step, the image unchanged, the last frame ≈ the image.
    await page.uncheck(tid('attention-maps'));
    await page.check(tid('timeline-on'));
    await generateAll(page);
    const img2 = await readCanvas(page, 'image-original');
    assert(img2.rgba.every((v, i) => v === plain.rgba[i]), 'decoding the timeline changed the image');
    assert(await page.isVisible(tid('timeline')), 'the timeline is hidden');
    assert(Number(await page.getAttribute(tid('timeline-scrubber'), 'max')) === TINY.steps, 'one frame a step');
    const lastFrame = await page.$eval('[data-testid="timeline-frame"][data-variant="original"]', (c) => ({ step: c.dataset.step, rgba: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data) }));
    assert(Number(lastFrame.step) === TINY.steps, `the timeline opens at step ${lastFrame.step}`);
    const lastDiff = Math.max(...lastFrame.rgba.map((v, i) => Math.abs(v - plain.rgba[i])));
    assert(lastDiff <= 8, `the last x̂₀ is ${lastDiff} levels from the image`);
    await page.fill(tid('timeline-scrubber'), '1');
    await page.dispatchEvent(tid('timeline-scrubber'), 'input');
    const firstStep = await page.$eval('[data-testid="timeline-frame"][data-variant="original"]', (c) => c.dataset.step);
    assert(firstStep === '1', `scrubbed to step ${firstStep}`);

    // The anatomy and the equation on the tiny SD-1 (WebGPU): UCE from the erase form, its norms against `studio anatomy`.
    await computeEntry(page, 'uce', 'a red circle', { 'erase-preserve': 'a blue square', 'erase-params': '' });
    await page.click(tid('edit-explain-0'));
    await page.waitForSelector('[data-testid="anatomy-chart"]', { timeout: 60_000 });
    const bars = await page.$$eval('[data-testid="anatomy-chart"] rect[data-tensor]', (rs) => rs.map((r) => ({ tensor: r.dataset.tensor, relative: Number(r.dataset.relative), rank: Number(r.dataset.rank) })));
    const eqText = await page.$eval(tid('equation'), (e) => (e.querySelector('math') ? e.textContent : ''));
    assert(eqText.includes('“a red circle”') && eqText.includes('“a blue square”'), `tiny equation: ${eqText}`);
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(tid('edit-export-0'))]);
    const file = join(OUT, 'anatomy-tiny-uce.safetensors');
    await dl.saveAs(file);
    const cliA = cliAnatomy(FIXTURE, file);
    let anatomyRel = 0;
    for (const t of cliA.tensors) {
      const b = bars.find((x) => x.tensor === t.tensor);
      assert(b && b.rank === t.rank, `${t.tensor}: ${JSON.stringify(b)} vs rank ${t.rank}`);
      anatomyRel = Math.max(anatomyRel, Math.abs(b.relative - t.relative) / t.relative);
    }
    // The page reads its originals back from the GPU: f32 here, so the same numbers up to the sums' order.
    assert(bars.length === cliA.tensors.length && anatomyRel <= 1e-4, `tiny anatomy page vs CLI: ${anatomyRel} relative over ${bars.length} bars`);
    // The sweep on a model without the classroom evaluator: the pixels against the original's.
    await page.click('[data-testid="sweep-open"] summary');
    await page.fill(tid('sweep-values'), '0, 1');
    await page.fill(tid('sweep-concept'), 'a red circle');
    await page.fill(tid('sweep-neighbours'), 'a blue square');
    await page.click(tid('sweep-run'));
    await page.waitForFunction(() => window.__studio.busy() === 'edit', null, { timeout: 10_000, polling: 20 }).catch(() => {});
    await page.waitForFunction(() => window.__studio.busy() === null, null, { timeout: 300_000, polling: 100 });
    const sweepErr = await visibleError(page);
    assert(!sweepErr, `sweep on the tiny model: ${sweepErr}`);
    const tinySweep = JSON.parse(await page.getAttribute(tid('sweep-chart'), 'data-points'));
    // erase_scale 0: UCE's solve gives W back (preserve term only), so every pixel is the original's.
    assert(tinySweep.length === 2 && tinySweep.every((p) => p.metric === 'pixels') && tinySweep[0].detected === 1 && tinySweep[0].kept === 1, `tiny sweep ${JSON.stringify(tinySweep)}`);
    assert((await page.textContent(tid('sweep-chart'))).includes('unchanged'), 'the tiny sweep is labelled as the evaluator\'s');
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    return { chosenMapsMaxDiff: chosenMax, chosenVsAll: fromAll, anatomyRelDiff: anatomyRel, tinySweep, words: a.words.length, layers: a.layers, heads: a.heads, mapsMaxDiff: max, maxSum, steps: a.steps, recordMs: Math.round(a.ms), timelineLastFrameMaxDiff: lastDiff, totalMs: times.map(Math.round), mapsCost: +(times[3] / times[1] - 1).toFixed(3) };
  });

  await runCase('attention maps and timeline: erase "skull" with UCE on the classroom model (CPU path), original vs edited, click a word', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=classroom&backend=cpu`);
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    const p = { prompt: 'a skull', negativePrompt: '', seed: 3, steps: 25, guidance: 3, size: 64, scheduler: 'ddim' };
    await setParams(page, p);
    await page.selectOption(tid('preview-every'), '0');
    await page.selectOption(tid('erase-method'), 'uce');
    await page.fill(tid('erase-concepts'), 'skull');
    await page.fill(tid('erase-params'), '');
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 1 && window.__studio.busy() === null, null, { timeout: 120_000, polling: 50 });
    // The cost of each view (BENCHMARKS.md): the same pair of runs plain, with maps, with maps and the timeline.
    const pair = async () => {
      const t = Date.now();
      await generateAll(page, 600_000);
      return Date.now() - t;
    };
    await pair(); // warm-up
    const plainMs = await pair();
    const plainEdited = await readCanvas(page, 'image-edited');
    await page.check(tid('attention-maps'));
    const mapsMs = await pair();
    await page.check(tid('timeline-on'));
    const bothMs = await pair();
    const edited = await readCanvas(page, 'image-edited');
    assert(edited.rgba.every((v, i) => v === plainEdited.rgba[i]), 'the views changed the edited image');
    const o = await attentionOf(page, 'original');
    const e = await attentionOf(page, 'edited');
    assert(o && e, 'maps for both images');
    assert((await page.$$(tid('attention-map'))).length === 2 && (await page.$$(tid('attention-iou'))).length === 2, 'two maps and two IoU numbers');
    const skull = o.words.findIndex((w) => w.text === 'skull');
    assert(skull >= 0, `words ${o.words.map((w) => w.text)}`);
    await page.click(`[data-testid="attention-token"][data-word="${skull}"]`);
    const shown = await page.$$eval(tid('attention-map'), (cs) => cs.map((c) => c.dataset.word));
    assert(shown.every((w) => w === 'skull'), `maps shown for ${shown}`);
    const ious = await page.$$eval(tid('attention-iou'), (xs) => xs.map((x) => x.dataset.iou));
    // The original's maps against `studio attention` on the same settings (the CPU path runs the same ndarray kernels).
    const cli = cliAttention(CLASSROOM, p, 'classroom-skull');
    let max = 0;
    for (let i = 0; i < cli.data.length; i++) max = Math.max(max, Math.abs(cli.data[i] - o.maps[i]));
    assert(max <= TOL_MAPS, `classroom page vs CLI maps: max |Δ| ${max}`);
    const cliIou = cli.iou[skull].iou;
    assert(Math.abs((cliIou ?? -1) - (o.scores[skull].iou ?? -1)) <= 0.02, `skull IoU page ${o.scores[skull].iou} vs CLI ${cliIou}`);
    const diffs = (await page.getAttribute(tid('timeline-chart'), 'data-diffs')).split(',').map(Number);
    assert(diffs.length === p.steps, `${diffs.length} differences for ${p.steps} steps`);
    await page.screenshot({ path: join(OUT, 'teaching-classroom-uce.png'), fullPage: true });
    // The README's picture (docs/screenshots/studio-teaching.png): the result column with both views.
    await page.locator('section.stage').screenshot({ path: join(OUT, 'teaching-views.png') });
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    return {
      skullIouOriginal: o.scores[skull].iou, skullIouEdited: e.scores[skull].iou, shownIou: ious, mapsMaxDiff: max, recordMs: Math.round(o.ms),
      pairMs: { plain: plainMs, maps: mapsMs, mapsAndTimeline: bothMs }, mapsCost: +(mapsMs / plainMs - 1).toFixed(3), timelineDiffs: diffs.map((d) => +d.toFixed(1)),
    };
  });

  await runCase('what it does: UCE\'s equation and anatomy in the page equal `studio anatomy` (classroom, CPU path); SLD\'s equation and its guidance terms per step equal `studio generate --sld-terms`', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=classroom&backend=cpu`);
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    await computeEntry(page, 'uce', 'skull', { 'erase-preserve': 'triangle', 'erase-params': 'lamb=0.5' });
    assert(!(await page.isVisible(tid('edit-anatomy'))), 'the view shows before it is asked for');
    await page.click(tid('edit-explain-0'));
    await page.waitForSelector('[data-testid="anatomy-chart"]', { timeout: 60_000 });
    await page.waitForFunction(() => window.__studio.busy() === null, null, { timeout: 60_000 });
    const eq = await page.$eval(tid('equation'), (e) => ({ method: e.dataset.method, math: !!e.querySelector('math'), text: e.textContent }));
    assert(eq.method === 'uce' && eq.math, `equation ${JSON.stringify(eq)}`);
    for (const want of ['“skull”', '“triangle”', 'λ = 0.5', 'rank']) assert(eq.text.includes(want), `the equation's bindings lack ${want}: ${eq.text}`);
    const bars = await page.$$eval('[data-testid="anatomy-chart"] rect[data-tensor]', (rs) => rs.map((r) => ({ tensor: r.dataset.tensor, relative: Number(r.dataset.relative), rank: Number(r.dataset.rank) })));
    const keys = await page.$$eval('[data-testid="anatomy-keys"] tr', (rs) => rs.slice(1).map((r) => Array.from(r.children).map((c) => c.textContent)));
    // The same edit as a file, read by the CLI against the model's own safetensors.
    const [dl] = await Promise.all([page.waitForEvent('download'), page.click(tid('edit-export-0'))]);
    const file = join(OUT, 'anatomy-uce-skull.safetensors');
    await dl.saveAs(file);
    const cli = cliAnatomy(CLASSROOM, file);
    assert(bars.length === cli.tensors.length && bars.length > 0, `${bars.length} bars for ${cli.tensors.length} tensors`);
    let maxRel = 0;
    for (const t of cli.tensors) {
      const b = bars.find((x) => x.tensor === t.tensor);
      assert(b, `no bar for ${t.tensor}`);
      maxRel = Math.max(maxRel, Math.abs(b.relative - t.relative) / t.relative);
      assert(b.rank === t.rank, `${t.tensor}: rank ${b.rank} vs ${t.rank}`);
    }
    assert(maxRel <= 1e-6, `‖ΔW‖/‖W‖ page vs CLI: ${maxRel} relative`);
    assert(keys.length === cli.keys.length, `${keys.length} key rows vs ${cli.keys.length}`);
    keys.forEach((row, i) => {
      const k = cli.keys[i];
      assert(Math.abs(Number(row[3]) - k.before) <= 1e-3 && Math.abs(Number(row[4]) - k.after) <= 1e-3, `key row ${row} vs ${JSON.stringify(k)}`);
    });
    const guide = cli.keys.find((k) => k.kind === 'guide' && k.projection === 'to_v');
    assert(guide.after > guide.before, `UCE did not move skull's value towards the guide: ${guide.before} → ${guide.after}`);
    await page.locator(tid('edit-anatomy')).screenshot({ path: join(OUT, 'teaching-anatomy.png') });

    // An inference-time method: SLD's equation with its preset's numbers, no anatomy.
    await page.selectOption(tid('erase-method'), 'sld');
    await page.fill(tid('erase-params'), 'preset=strong');
    await page.click(tid('erase-apply'));
    await page.waitForFunction(() => window.__studio.edits().length === 2 && window.__studio.busy() === null, null, { timeout: 60_000, polling: 50 });
    await page.click(tid('edit-explain-1'));
    await page.waitForFunction(() => document.querySelector('[data-testid="equation"]')?.dataset.method === 'sld', null, { timeout: 10_000 });
    const sld = await page.$eval(tid('equation'), (e) => e.textContent);
    assert(/s_S = \d+/.test(sld) && sld.includes('warm-up') && !(await page.$(tid('anatomy-chart'))), `SLD's view: ${sld}`);
    assert(!(await page.$(tid('guidance-terms'))) && (await page.textContent(tid('edit-anatomy'))).includes('Generate with this entry on'), 'SLD terms before any run');
    // SLD's guidance terms per step after a run with it on (and UCE), against `studio generate --sld-terms` with the same edit.
    const SLD_RUN = { prompt: 'a skull', negativePrompt: '', seed: 3, steps: 10, guidance: 7.5, size: 64, scheduler: 'ddim' };
    await setParams(page, SLD_RUN);
    await generateAll(page);
    await page.waitForSelector(tid('guidance-terms'), { timeout: 10_000 });
    const pageTerms = await page.$$eval('[data-testid="guidance-terms"] rect[data-step]', (rs) => rs.map((r) => ({ step: Number(r.dataset.step), applied: r.dataset.applied === 'true', relative: Number(r.dataset.relative), coverage: Number(r.dataset.coverage) })));
    const termsFile = join(OUT, 'cli-sld-terms.json');
    execFileSync(CLI, ['generate', '--model', CLASSROOM, '--edit', file, '--prompt', SLD_RUN.prompt, '--steps', '10', '--guidance', '7.5', '--seed', '3', '--scheduler', 'ddim', '--height', '64', '--width', '64',
      '--sld', 'strong', '--sld-concept', 'skull', '--sld-terms', termsFile, '--out', join(OUT, 'cli-sld-terms.png')], { stdio: ['ignore', 'pipe', 'pipe'] });
    const cliTerms = JSON.parse(readFileSync(termsFile, 'utf8'));
    assert(pageTerms.length === 10 && cliTerms.length === 10, `${pageTerms.length} page steps, ${cliTerms.length} CLI steps`);
    assert(pageTerms.filter((t) => t.applied).length === 3 && pageTerms[7].applied && !pageTerms[6].applied, 'strong subtracts γ from step 7 on');
    let termsRel = 0;
    let coverageDiff = 0;
    pageTerms.forEach((t, i) => {
      termsRel = Math.max(termsRel, Math.abs(t.relative - cliTerms[i].relative) / cliTerms[i].relative);
      coverageDiff = Math.max(coverageDiff, Math.abs(t.coverage - cliTerms[i].coverage));
    });
    assert(termsRel <= 1e-3 && coverageDiff <= 0.01, `SLD terms page vs CLI: ${termsRel} relative, coverage ±${coverageDiff}`);
    const summary = await page.textContent(tid('guidance-summary'));
    assert(summary.includes('from step 7 on (3 of 10 steps)'), `summary: ${summary}`);
    await page.locator(tid('edit-anatomy')).screenshot({ path: join(OUT, 'teaching-sld-terms.png') });
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    return { tensors: bars.length, maxRelDiff: maxRel, ranks: [...new Set(bars.map((b) => b.rank))], keys: cli.keys.map((k) => `${k.kind} ${k.projection} ${k.before.toFixed(4)}→${k.after.toFixed(4)}`), sldTermsRelDiff: termsRel, sldCoverageDiff: coverageDiff, sldRelative: pageTerms.map((t) => +t.relative.toFixed(4)) };
  });

  await runCase('sweep chart: UCE\'s erase scale against the skull detected and the neighbours kept, scored in the page by the classroom evaluator (CPU path)', async () => {
    const { page, consoleErrors } = await openPage(ctx, `${url}?model=classroom&backend=cpu`);
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 120_000 });
    await setParams(page, { prompt: 'a skull', negativePrompt: '', seed: 3, steps: 25, guidance: 3, size: 64, scheduler: 'ddim' });
    await page.selectOption(tid('erase-method'), 'uce');
    await page.fill(tid('erase-concepts'), 'skull');
    await page.fill(tid('erase-params'), 'tokens=legacy');
    await page.click('[data-testid="sweep-open"] summary');
    await page.fill(tid('sweep-values'), '0, 0.5, 1');
    const t = Date.now();
    await page.click(tid('sweep-run'));
    await page.waitForFunction(() => window.__studio.busy() === 'edit', null, { timeout: 10_000, polling: 20 }).catch(() => {});
    await page.waitForFunction(() => window.__studio.busy() === null, null, { timeout: 600_000, polling: 100 });
    const err = await visibleError(page);
    assert(!err, `the sweep failed: ${err}`);
    const points = JSON.parse(await page.getAttribute(tid('sweep-chart'), 'data-points'));
    assert(points.length === 3 && (await page.$$('[data-testid="sweep-chart"] circle')).length === 6, `points ${JSON.stringify(points)}`);
    // erase_scale 0 without preserved concepts leaves W unchanged: the original's detection; at 1 the skull is gone.
    const [p0, , p1] = points;
    assert(p0.detected === 1 && p0.kept === 1, `at erase_scale 0 the model is the original: ${JSON.stringify(p0)}`);
    assert(p1.detected < p0.detected, `UCE at erase_scale 1 did not lower the skull's detection: ${JSON.stringify(points)}`);
    assert(await page.evaluate(() => window.__studio.edits().length) === 0, 'the sweep left an entry in the list');
    await page.locator('#sweep-card').screenshot({ path: join(OUT, 'teaching-sweep.png') });
    // A bad value list: a clear error, the model untouched.
    await page.fill(tid('sweep-values'), '0, lots');
    await page.click(tid('sweep-run'));
    const bad = await visibleError(page);
    assert(bad && bad.includes('lots'), `bad values: ${bad}`);
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    return { points, ms: Date.now() - t };
  });
}
