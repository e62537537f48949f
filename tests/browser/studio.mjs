// End-to-end test of the browser studio in headless Chromium (playwright-core, Debian chromium).
//
// Serves web/dist with `vite preview` on 127.0.0.1, then, with the tiny SD-1 fixture:
//  1. WebGPU (SwiftShader here): load, generate, compare the pixels with the native CLI's
//     (`studio generate ... --dump`) for the same prompt, seed, steps and scheduler;
//  2. cancel mid-run, then generate again;
//  3. a corrupt weight file, a folder missing a component and a component without weights,
//     each picked through "Open folder": a clear data-testid="error" message, page still usable;
//  4. the CPU fallback (?backend=cpu): generate and compare with the CLI;
//  5. WebGPU absent (Chromium without --enable-unsafe-webgpu): a clear message, CPU path works.
// Screenshots and a results.json go to tests/browser/out/ (git-ignored).
//
// Env: STUDIO_CLI (path of the `studio` binary; the comparison is skipped with a notice if it is
// missing), CHROMIUM (default /usr/bin/chromium), KEEP_GOING=1 (run every case even after a failure).

import { spawn, execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { chromium } from 'playwright-core';

const ROOT = resolve(import.meta.dirname, '../..');
const OUT = join(ROOT, 'tests/browser/out');
const FIXTURE = join(ROOT, 'tests/fixtures/tiny-sd1');
const CLASSROOM = join(ROOT, 'models/classroom');
const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const CLI = process.env.STUDIO_CLI ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'debug/studio');
// The browser's 8-bit pixels vs the CLI's float image put through the same `round((x/2+0.5)*255)`:
// the CPU path runs the same ndarray kernels in wasm as natively; WebGPU sums in another order.
const TOL_CPU = 1;
const TOL_WEBGPU = 2;

const PARAMS = { prompt: 'a big red star on a blue striped background', negativePrompt: 'blurry', seed: 1234, steps: 8, guidance: 7.5, size: 16, scheduler: 'euler-a' };

mkdirSync(OUT, { recursive: true });
const results = { cases: {}, failures: [] };
const log = (...a) => console.log('[browser]', ...a);

function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

async function serve() {
  const port = await freePort();
  const proc = spawn(join(ROOT, 'node_modules/.bin/vite'), ['preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PORT: String(port) },
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const url = `http://127.0.0.1:${port}/`;
  for (let i = 0; i < 100; i++) {
    try {
      const r = await fetch(url);
      if (r.ok) return { url, proc };
    } catch {}
    await new Promise((r) => setTimeout(r, 200));
  }
  proc.kill();
  throw new Error(`vite preview did not start:\n${out}`);
}

const BASE_FLAGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

async function launch(webgpu) {
  const profile = mkdtempSync(join(tmpdir(), 'studio-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...BASE_FLAGS, ...(webgpu ? ['--enable-unsafe-webgpu'] : [])],
    viewport: { width: 1280, height: 860 },
  });
  return { ctx, profile };
}

async function openPage(ctx, url) {
  const page = await ctx.newPage();
  const consoleErrors = [];
  page.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(m.text());
  });
  page.on('pageerror', (e) => consoleErrors.push(`pageerror: ${e.message}`));
  const t0 = Date.now();
  await page.goto(url);
  return { page, consoleErrors, t0 };
}

const tid = (id) => `[data-testid="${id}"]`;

async function waitReady(page, timeout = 120_000) {
  await page.waitForFunction(() => window.__studio?.ready(), null, { timeout, polling: 50 });
}

async function setParams(page, p) {
  await page.fill(tid('prompt'), p.prompt);
  await page.fill(tid('negative-prompt'), p.negativePrompt);
  await page.fill(tid('seed'), String(p.seed));
  await page.fill(tid('steps'), String(p.steps));
  await page.fill(tid('guidance'), String(p.guidance));
  await page.selectOption(tid('size'), String(p.size));
  await page.selectOption(tid('scheduler'), p.scheduler);
}

/** Clicks Generate and waits for a new image; returns its RGBA pixels. */
async function generate(page, timeout = 300_000) {
  const before = await page.getAttribute(tid('image-original'), 'data-request-id');
  // A notice already on screen (the WebGPU fallback) is not a failure of this run.
  const errBefore = await visibleError(page);
  await page.click(tid('generate'));
  await page.waitForFunction(
    ([b, e0]) => {
      const c = document.querySelector('[data-testid="image-original"]');
      const err = document.querySelector('[data-testid="error"]');
      const errText = err && !err.hidden ? err.textContent.replace(/\s+/g, ' ').trim() : null;
      return (c && c.dataset.requestId && c.dataset.requestId !== b) || (errText && errText !== e0);
    },
    [before, errBefore],
    { timeout, polling: 50 },
  );
  const err = await visibleError(page);
  if (err && err !== errBefore) throw new Error(`generation failed in the page: ${err}`);
  return page.evaluate(() => {
    const c = document.querySelector('[data-testid="image-original"]');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
    return { width: c.width, height: c.height, rgba: Array.from(d.data), backend: c.dataset.backend };
  });
}

async function visibleError(page) {
  return page.evaluate(() => {
    const e = document.querySelector('[data-testid="error"]');
    return e && !e.hidden ? e.textContent.replace(/\s+/g, ' ').trim() : null;
  });
}

/** Reads tensor `name` (f32) of a safetensors file. */
function readSafetensors(path, name) {
  const buf = readFileSync(path);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8'));
  const t = header[name];
  if (!t) throw new Error(`${path} has no tensor ${name}`);
  if (t.dtype !== 'F32') throw new Error(`${name} is ${t.dtype}, expected F32`);
  const [a, b] = t.data_offsets;
  const bytes = buf.subarray(8 + n + a, 8 + n + b);
  const f = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
  return { shape: t.shape, data: f };
}

/** The CLI's image as RGBA bytes, by pipeline::generate::rgb8_from_f32's rule. */
function cliImage(p, model = FIXTURE) {
  const tag = `${model === FIXTURE ? 'tiny' : 'classroom'}-${p.scheduler}-${p.seed}`;
  const dump = join(OUT, `cli-${tag}.safetensors`);
  const args = ['generate', '--model', model, '--prompt', p.prompt, '--negative-prompt', p.negativePrompt, '--steps', String(p.steps), '--guidance', String(p.guidance),
    '--scheduler', p.scheduler, '--height', String(p.size), '--width', String(p.size), '--seed', String(p.seed), '--dump', dump, '--out', join(OUT, `cli-${tag}.png`)];
  execFileSync(CLI, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const { shape, data } = readSafetensors(dump, 'image');
  const [, , h, w] = shape;
  const rgba = new Array(h * w * 4).fill(255);
  for (let c = 0; c < 3; c++)
    for (let i = 0; i < h * w; i++) {
      const v = Math.min(1, Math.max(0, data[c * h * w + i] / 2 + 0.5));
      rgba[i * 4 + c] = Math.round(v * 255);
    }
  return { width: w, height: h, rgba };
}

function maxDiff(a, b) {
  if (a.width !== b.width || a.height !== b.height) throw new Error(`size ${a.width}×${a.height} vs ${b.width}×${b.height}`);
  let m = 0;
  let sum = 0;
  for (let i = 0; i < a.rgba.length; i++) {
    const d = Math.abs(a.rgba[i] - b.rgba[i]);
    m = Math.max(m, d);
    sum += d;
  }
  return { max: m, mean: sum / a.rgba.length };
}

function distinctPixels(img) {
  const s = new Set();
  for (let i = 0; i < img.rgba.length; i += 4) s.add(`${img.rgba[i]},${img.rgba[i + 1]},${img.rgba[i + 2]}`);
  return s.size;
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

async function runCase(name, fn) {
  const t = Date.now();
  try {
    const r = (await fn()) ?? {};
    results.cases[name] = { ok: true, ms: Date.now() - t, ...r };
    log(`ok   ${name} (${((Date.now() - t) / 1000).toFixed(1)} s)`, JSON.stringify(r));
  } catch (e) {
    results.cases[name] = { ok: false, error: String(e?.stack ?? e) };
    results.failures.push(name);
    log(`FAIL ${name}: ${e?.stack ?? e}`);
    if (!process.env.KEEP_GOING) throw e;
  }
}

/** A copy of the fixture changed by `edit(dir)`, named `name`. */
function fixtureVariant(name, edit) {
  const dir = join(mkdtempSync(join(tmpdir(), 'studio-model-')), name);
  cpSync(FIXTURE, dir, { recursive: true });
  edit(dir);
  return dir;
}

async function expectLoadError(page, dir, pattern, shot) {
  await page.setInputFiles(tid('folder-input'), dir);
  await page.waitForFunction(() => {
    const e = document.querySelector('[data-testid="error"]');
    return e && !e.hidden;
  }, null, { timeout: 60_000 });
  const msg = await visibleError(page);
  assert(pattern.test(msg), `error message ${JSON.stringify(msg)} does not match ${pattern}`);
  await page.screenshot({ path: join(OUT, shot) });
  // Still usable: the bundled fixture loads and generates again.
  await page.selectOption(tid('model-select'), 'tiny-sd1');
  await waitReady(page);
  await page.fill(tid('steps'), '2');
  const img = await generate(page);
  assert(img.width === 16, 'generation after the error failed');
  return msg;
}

const haveCli = existsSync(CLI);
if (!haveCli) log(`NOTE: ${CLI} not found: the browser-vs-CLI comparison is skipped (build it with cargo build -p cli)`);
const cli = haveCli ? cliImage(PARAMS) : null;

const { url, proc } = await serve();
log('serving', url);
const launched = [];
let exitCode = 0;
try {
  const gpu = await launch(true);
  launched.push(gpu);

  await runCase('webgpu: load, generate, compare with the CLI', async () => {
    const { page, consoleErrors, t0 } = await openPage(gpu.ctx, `${url}?model=tiny-sd1`);
    await waitReady(page);
    const engine = await page.textContent(tid('engine'));
    assert(/WebGPU/.test(engine), `expected WebGPU, the engine says ${engine}`);
    const tReady = Date.now() - t0;
    await setParams(page, PARAMS);
    const img = await generate(page);
    const tFirst = Date.now() - t0;
    assert(img.backend === 'webgpu', `image made on ${img.backend}`);
    assert(distinctPixels(img) > 10, 'the image is flat');
    await page.screenshot({ path: join(OUT, 'studio-webgpu.png') });
    const status = await page.textContent(tid('status'));
    const r = { engine: engine.trim(), pageLoadToReadyMs: tReady, pageLoadToFirstImageMs: tFirst, status, consoleErrors: consoleErrors.length };
    // A second run of the same settings must give the same pixels.
    const tAgain = Date.now();
    const again = await generate(page);
    r.secondRunMs = Date.now() - tAgain;
    r.repeatMaxDiff = maxDiff(img, again).max;
    assert(r.repeatMaxDiff === 0, 'the same seed gave a different image');
    if (cli) {
      const d = maxDiff(img, cli);
      Object.assign(r, { cliMaxDiff: d.max, cliMeanDiff: d.mean, tolerance: TOL_WEBGPU });
      assert(d.max <= TOL_WEBGPU, `WebGPU vs CLI: max pixel difference ${d.max} > ${TOL_WEBGPU}`);
    }
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 5).join(' | ')}`);
    await page.close();
    return r;
  });

  await runCase('webgpu: cancel mid-run, then generate again', async () => {
    const { page } = await openPage(gpu.ctx, `${url}?model=tiny-sd1`);
    await waitReady(page);
    await setParams(page, { ...PARAMS, steps: 400, scheduler: 'ddim' });
    await page.click(tid('generate'));
    await page.waitForFunction(() => Number(document.querySelector('[data-testid="progress"]').value) >= 3 / 400, null, { timeout: 120_000, polling: 20 });
    await page.click(tid('cancel'));
    await page.waitForFunction(() => /Cancelled/.test(document.querySelector('[data-testid="status"]').textContent), null, { timeout: 60_000 });
    const progress = await page.evaluate(() => document.querySelector('[data-testid="progress"]').value);
    assert(progress < 1, `progress ${progress} after cancel`);
    assert(await page.isEnabled(tid('generate')), 'Generate stays disabled after cancel');
    assert(!(await page.isEnabled(tid('cancel'))), 'Cancel stays enabled after cancel');
    const status = await page.textContent(tid('status'));
    await page.screenshot({ path: join(OUT, 'studio-cancelled.png') });
    await page.fill(tid('steps'), '3');
    const img = await generate(page);
    assert(img.width === 16, 'no image after cancel');
    await page.close();
    return { cancelledAtFraction: progress, status };
  });

  await runCase('errors: corrupt file, missing component, component without weights', async () => {
    const { page } = await openPage(gpu.ctx, `${url}?model=tiny-sd1`);
    await waitReady(page);
    const corrupt = fixtureVariant('corrupt-unet', (d) => {
      const f = join(d, 'unet/diffusion_pytorch_model.safetensors');
      truncateSync(f, Math.floor(statSync(f).size / 2));
    });
    const m1 = await expectLoadError(page, corrupt, /diffusion_pytorch_model\.safetensors.*(corrupt|truncated)/i, 'error-corrupt.png');
    const noVae = fixtureVariant('no-vae', (d) => rmSync(join(d, 'vae'), { recursive: true }));
    const m2 = await expectLoadError(page, noVae, /no vae\//i, 'error-missing-component.png');
    const noWeights = fixtureVariant('no-vae-weights', (d) => rmSync(join(d, 'vae/diffusion_pytorch_model.safetensors')));
    const m3 = await expectLoadError(page, noWeights, /no `vae`.*safetensors/i, 'error-no-weights.png');
    await page.close();
    return { corrupt: m1, missingComponent: m2, noWeights: m3 };
  });

  await runCase('cpu: generate on the CPU fallback, compare with the CLI', async () => {
    const { page, t0 } = await openPage(gpu.ctx, `${url}?model=tiny-sd1&backend=cpu`);
    await waitReady(page);
    const engine = await page.textContent(tid('engine'));
    assert(/CPU/.test(engine), `expected CPU, the engine says ${engine}`);
    await setParams(page, PARAMS);
    const img = await generate(page);
    const r = { engine: engine.trim(), pageLoadToFirstImageMs: Date.now() - t0 };
    assert(img.backend === 'cpu', `image made on ${img.backend}`);
    await page.screenshot({ path: join(OUT, 'studio-cpu.png') });
    if (cli) {
      const d = maxDiff(img, cli);
      Object.assign(r, { cliMaxDiff: d.max, cliMeanDiff: d.mean, tolerance: TOL_CPU });
      assert(d.max <= TOL_CPU, `CPU vs CLI: max pixel difference ${d.max} > ${TOL_CPU}`);
    }
    await page.close();
    return r;
  });

  if (existsSync(join(CLASSROOM, 'unet'))) {
    // The bundled classroom model (64×64), few steps: SwiftShader runs it at ~6 s per step.
    const CP = { ...PARAMS, negativePrompt: '', steps: 3, size: 64, scheduler: 'ddim' };
    const cliClassroom = haveCli ? cliImage(CP, CLASSROOM) : null;
    for (const backend of ['cpu', 'webgpu']) {
      await runCase(`classroom model on ${backend}: generate, compare with the CLI`, async () => {
        const { page, t0 } = await openPage(gpu.ctx, `${url}${backend === 'cpu' ? '?backend=cpu' : ''}`);
        await waitReady(page);
        const selected = await page.inputValue(tid('model-select'));
        assert(selected === 'classroom', `the default model is ${selected}, expected the classroom model`);
        await setParams(page, CP);
        const img = await generate(page, 600_000);
        const r = { pageLoadToFirstImageMs: Date.now() - t0, status: await page.textContent(tid('status')) };
        assert(img.backend === backend, `image made on ${img.backend}`);
        assert(distinctPixels(img) > 50, 'the image is nearly flat');
        await page.screenshot({ path: join(OUT, `classroom-${backend}.png`) });
        if (cliClassroom) {
          const tol = backend === 'cpu' ? TOL_CPU : TOL_WEBGPU;
          const d = maxDiff(img, cliClassroom);
          Object.assign(r, { cliMaxDiff: d.max, cliMeanDiff: d.mean, tolerance: tol });
          assert(d.max <= tol, `${backend} vs CLI: max pixel difference ${d.max} > ${tol}`);
        }
        await page.close();
        return r;
      });
    }
  }

  await runCase('no WebGPU: a clear message and the CPU path', async () => {
    const plain = await launch(false);
    launched.push(plain);
    const { page } = await openPage(plain.ctx, `${url}?model=tiny-sd1`);
    await waitReady(page);
    const msg = await visibleError(page);
    assert(msg && /WebGPU is unavailable/.test(msg) && /CPU/.test(msg), `expected a WebGPU-unavailable message, got ${msg}`);
    await page.fill(tid('steps'), '2');
    const img = await generate(page);
    assert(img.backend === 'cpu', `image made on ${img.backend}`);
    await page.screenshot({ path: join(OUT, 'no-webgpu.png') });
    await page.close();
    return { message: msg };
  });
} catch (e) {
  exitCode = 1;
} finally {
  for (const l of launched) {
    await l.ctx.close().catch(() => {});
    rmSync(l.profile, { recursive: true, force: true });
  }
  proc.kill();
}
if (results.failures.length) exitCode = 1;
writeFileSync(join(OUT, 'results.json'), JSON.stringify(results, null, 2));
log(results.failures.length ? `FAILED: ${results.failures.join('; ')}` : 'all browser cases passed', `(details: ${join(OUT, 'results.json')})`);
process.exit(exitCode);
