// The teaching views (issue 15) in headless Chromium, on WebGPU (SwiftShader here):
//  - attention maps (DAAM): the page's maps for the tiny SD-1 fixture equal `studio attention`'s
//    (safetensors `maps`), their sums are what DAAM defines, the image is unchanged by recording,
//    the per-word IoU equals the CLI's;
//  - the denoising timeline: one decoded x̂₀ a step, the last one the image, a scrubber;
//  - the flagship demo with maps: the classroom model, UCE on "skull" from the erase form, the
//    original and edited maps side by side, a click on a word shows its map; the skull word's IoU
//    with the object is reported for both.
// Run by studio.mjs (`teachingCases`).

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLASSROOM, CLI, FIXTURE, OUT, assert, generateAll, openPage, readCanvas, readSafetensors, runCase, setParams, tid } from './lib.mjs';

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
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 3).join(' | ')}`);
    await page.close();
    return { words: a.words.length, layers: a.layers, heads: a.heads, mapsMaxDiff: max, maxSum, steps: a.steps, recordMs: Math.round(a.ms), timelineLastFrameMaxDiff: lastDiff, totalMs: times.map(Math.round), mapsCost: +(times[3] / times[1] - 1).toFixed(3) };
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
}
