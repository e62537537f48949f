// An SD 1.5-sized checkpoint in the page (scripts/bench-web-large.sh): does a 2.1 GB model (1.7 GB
// fp16 UNet) download from the hub, load and generate in a browser tab, and what does it cost?
// The model has SD 1.5's exact shapes and random weights (scripts/reference/make_sd15_random.py):
// no real weights can be downloaded here. The hub mirror of vite.config.ts serves it as
// `erasure-studio/sd15-random`, so the page goes through the real hub path: listing, per-file
// download into the cache (OPFS), SHA-256 check, load (weights copied into wasm one tensor at a
// time), a second load from the cache, the CPU path's refusal with its message, and (LARGE_GENERATE=1)
// a short generation on WebGPU — on SwiftShader that takes tens of minutes for SD 1.5's UNet.
// Not part of `npm test`: it needs the 2.1 GB model and takes minutes.
// Prints JSON and writes tests/browser/out/large.json after each phase.
// Env: SD15_RANDOM (the model folder; default /var/cache/erasure-studio/sd15-random),
// LARGE_GENERATE=1, LARGE_SIZE (256), LARGE_STEPS (1), LARGE_TIMEOUT_MIN (60).

import { statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const MODEL = process.env.SD15_RANDOM ?? '/var/cache/erasure-studio/sd15-random';
const REPO = 'erasure-studio/sd15-random';
process.env.STUDIO_HUB_MIRROR_REPOS = `${REPO}=${MODEL}`;
statSync(join(MODEL, 'unet/diffusion_pytorch_model.fp16.safetensors'));

const { OUT, assert, distinctPixels, launch, log, openPage, serve, setParams, tid, visibleError, waitReady, generate } = await import('./lib.mjs');

const SIZE = Number(process.env.LARGE_SIZE ?? 256);
const STEPS = Number(process.env.LARGE_STEPS ?? 1);
const GENERATE = process.env.LARGE_GENERATE === '1';
const TIMEOUT = Number(process.env.LARGE_TIMEOUT_MIN ?? 60) * 60_000;
const save = () => writeFileSync(join(OUT, 'large.json'), JSON.stringify(result, null, 1));

async function loadFromHub(page) {
  await page.selectOption(tid('model-select'), 'hub:other');
  await page.fill(tid('hub-repo'), REPO);
  const t0 = Date.now();
  await page.click(tid('hub-download'));
  await page.waitForFunction(
    () => {
      const e = document.querySelector('[data-testid="error"]');
      return (window.__studio.ready() && /sd15-random/.test(document.querySelector('[data-testid="model-info"]').textContent)) || (e && !e.hidden);
    },
    null,
    { timeout: 1_800_000, polling: 250 },
  );
  const wall = Date.now() - t0;
  const events = await page.evaluate(() => window.__studio.events.filter((e) => e.status === 'loaded' || e.status === 'download').slice(-40));
  const loaded = events.filter((e) => e.status === 'loaded').pop();
  return { wall, loaded, error: await visibleError(page) };
}

const { url, proc } = await serve();
const result = { model: MODEL, size: SIZE, steps: STEPS };
try {
  const mirror = `${url}hub-mirror`;
  // CPU path: an SD 1.5-sized model does not fit wasm32 as f32; the page must say so and stay usable.
  {
    const b = await launch(false);
    try {
      const { page } = await openPage(b.ctx, `${url}?backend=cpu&hub=${encodeURIComponent(mirror)}`);
      await waitReady(page);
      const r = await loadFromHub(page);
      log('cpu load', JSON.stringify({ wall: r.wall, error: r.error }));
      assert(r.error && /CPU|WebGPU/.test(r.error), `expected a clear refusal on the CPU path, got ${JSON.stringify(r)}`);
      await page.screenshot({ path: join(OUT, 'large-cpu-refused.png') });
      await page.selectOption(tid('model-select'), 'classroom');
      await waitReady(page);
      await page.fill(tid('steps'), '2');
      const img = await generate(page);
      assert(img.width === 64, 'the classroom model did not generate after the refusal');
      result.cpu = { refusal: r.error, refusedAfterMs: r.wall, classroomAfterwards: true };
      save();
    } finally {
      await b.ctx.close();
    }
  }
  // WebGPU: download, load, generate.
  {
    const b = await launch(true);
    try {
      const { page, consoleErrors } = await openPage(b.ctx, `${url}?backend=webgpu&hub=${encodeURIComponent(mirror)}`);
      await waitReady(page);
      const first = await loadFromHub(page);
      log('webgpu load', JSON.stringify({ wall: first.wall, ms: first.loaded?.ms, wasmBytes: first.loaded?.wasmBytes, error: first.error }));
      assert(!first.error && first.loaded, `the model did not load: ${first.error}`);
      const engine = (await page.textContent(tid('engine'))).trim();
      await page.screenshot({ path: join(OUT, 'large-loaded.png') });
      // From the cache on a second load: no download, load time alone.
      await page.selectOption(tid('model-select'), 'classroom');
      await waitReady(page);
      const again = await loadFromHub(page);
      assert(!again.error && again.loaded, `the cached model did not load: ${again.error}`);
      result.webgpu = {
        engine,
        downloadAndLoadMs: first.wall,
        loadMs: first.loaded.ms,
        cachedLoadMs: again.loaded.ms,
        cachedWallMs: again.wall,
        wasmBytesAfterLoad: first.loaded.wasmBytes,
        wasmBytesAfterSecondLoad: again.loaded.wasmBytes,
        modelBytes: first.loaded.bytes,
        consoleErrors: consoleErrors.slice(0, 5),
      };
      save();
      if (GENERATE) {
        await setParams(page, { prompt: 'a photograph of an astronaut riding a horse', negativePrompt: '', seed: 1, steps: STEPS, guidance: 7.5, size: SIZE, scheduler: 'ddim' });
        await page.selectOption(tid('preview-every'), '0');
        const t0 = Date.now();
        const progress = setInterval(async () => {
          const p = await page.evaluate(() => window.__studio.events.filter((e) => e.status === 'progress').at(-1)).catch(() => null);
          log(`generating: ${Math.round((Date.now() - t0) / 1000)} s`, p ? `step ${p.step}/${p.total}, ${Math.round(p.stepMs)} ms` : 'no step yet');
        }, 60_000);
        try {
          const img = await generate(page, TIMEOUT);
          const timing = await page.evaluate(() => window.__studio.timings.at(-1));
          log('webgpu generate', JSON.stringify(timing));
          assert(img.width === SIZE && distinctPixels(img) > 100, `the image is ${img.width} px with ${distinctPixels(img)} distinct pixels`);
          await page.screenshot({ path: join(OUT, 'large-generated.png') });
          result.webgpu.generate = { ...timing, wallMs: Date.now() - t0 };
          save();
        } finally {
          clearInterval(progress);
        }
      }
    } finally {
      await b.ctx.close();
    }
  }
} finally {
  proc.kill();
}
save();
console.log(JSON.stringify(result, null, 1));
