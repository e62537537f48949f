// Shared helpers of the browser tests (tests/browser/studio.mjs, tests/browser/features.mjs,
// scripts/bench-web.sh): a vite preview server, headless Chromium, the page's controls, the
// native CLI's image, pixel comparisons.

import { spawn, execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, truncateSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createServer } from 'node:net';
import { chromium } from 'playwright-core';

export const ROOT = resolve(import.meta.dirname, '../..');
export const OUT = join(ROOT, 'tests/browser/out');
export const FIXTURE = join(ROOT, 'tests/fixtures/tiny-sd1');
export const CLASSROOM = join(ROOT, 'models/classroom');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const CLI = process.env.STUDIO_CLI ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'debug/studio');
// The browser's 8-bit pixels vs the CLI's float image put through the same `round((x/2+0.5)*255)`:
// the CPU path runs the same ndarray kernels in wasm as natively; WebGPU sums in another order.
export const TOL_CPU = 1;
export const TOL_WEBGPU = 2;

export const PARAMS = { prompt: 'a big red star on a blue striped background', negativePrompt: 'blurry', seed: 1234, steps: 8, guidance: 7.5, size: 16, scheduler: 'euler-a' };

mkdirSync(OUT, { recursive: true });
export const results = { cases: {}, failures: [] };
export const log = (...a) => console.log('[browser]', ...a);

export function freePort() {
  return new Promise((res, rej) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => res(port));
    });
    s.on('error', rej);
  });
}

export async function serve() {
  const port = await freePort();
  const proc = spawn(join(ROOT, 'node_modules/.bin/vite'), ['preview', '--host', '127.0.0.1', '--port', String(port), '--strictPort'], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
    // The hub mirror (vite.config.ts) answers like the Hugging Face hub under /hub-mirror/.
    env: { ...process.env, PORT: String(port), STUDIO_HUB_MIRROR: '1' },
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

export const BASE_FLAGS = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export async function launch(webgpu) {
  const profile = mkdtempSync(join(tmpdir(), 'studio-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...BASE_FLAGS, ...(webgpu ? ['--enable-unsafe-webgpu'] : [])],
    viewport: { width: 1280, height: 860 },
  });
  return { ctx, profile };
}

export async function openPage(ctx, url) {
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

export const tid = (id) => `[data-testid="${id}"]`;

export async function waitReady(page, timeout = 120_000) {
  await page.waitForFunction(() => window.__studio?.ready(), null, { timeout, polling: 50 });
}

export async function setParams(page, p) {
  await page.fill(tid('prompt'), p.prompt);
  await page.fill(tid('negative-prompt'), p.negativePrompt);
  await page.fill(tid('seed'), String(p.seed));
  await page.fill(tid('steps'), String(p.steps));
  await page.fill(tid('guidance'), String(p.guidance));
  await page.selectOption(tid('size'), String(p.size));
  await page.selectOption(tid('scheduler'), p.scheduler);
}

/** Clicks Generate and waits for a new image; returns its RGBA pixels. */
export async function generate(page, timeout = 300_000) {
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

export async function visibleError(page) {
  return page.evaluate(() => {
    const e = document.querySelector('[data-testid="error"]');
    return e && !e.hidden ? e.textContent.replace(/\s+/g, ' ').trim() : null;
  });
}

/** Reads tensor `name` (f32) of a safetensors file. */
export function readSafetensors(path, name) {
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

/** The CLI's image as RGBA bytes, by pipeline::generate::rgb8_from_f32's rule. `extra`: more
 * `studio generate` flags (e.g. `--spm FILE`), `tag` names their output files. */
export function cliImage(p, model = FIXTURE, extra = [], extraTag = '') {
  const tag = `${model === FIXTURE ? 'tiny' : 'classroom'}-${p.scheduler}-${p.seed}${extraTag}`;
  const dump = join(OUT, `cli-${tag}.safetensors`);
  const args = ['generate', '--model', model, '--prompt', p.prompt, '--negative-prompt', p.negativePrompt, '--steps', String(p.steps), '--guidance', String(p.guidance),
    '--scheduler', p.scheduler, '--height', String(p.size), '--width', String(p.size), '--seed', String(p.seed), '--dump', dump, '--out', join(OUT, `cli-${tag}.png`), ...extra];
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

export function maxDiff(a, b) {
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

export function distinctPixels(img) {
  const s = new Set();
  for (let i = 0; i < img.rgba.length; i += 4) s.add(`${img.rgba[i]},${img.rgba[i + 1]},${img.rgba[i + 2]}`);
  return s.size;
}

export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

export async function runCase(name, fn) {
  // ONLY=<regex> runs the matching cases (for working on one).
  if (process.env.ONLY && !new RegExp(process.env.ONLY).test(name)) return;
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
export function fixtureVariant(name, edit) {
  const dir = join(mkdtempSync(join(tmpdir(), 'studio-model-')), name);
  cpSync(FIXTURE, dir, { recursive: true });
  edit(dir);
  return dir;
}

export async function expectLoadError(page, dir, pattern, shot) {
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


/** RGBA pixels of a canvas by test id. */
export async function readCanvas(page, testid) {
  return page.evaluate((id) => {
    const el = document.querySelector(`[data-testid="${id}"]`);
    const c = el.tagName === 'CANVAS' ? el : el.querySelector('canvas');
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height);
    return { width: c.width, height: c.height, rgba: Array.from(d.data), requestId: c.dataset.requestId, edits: c.dataset.edits, backend: c.dataset.backend };
  }, testid);
}

/** Clicks Generate and waits until every queued run is done (or an error shows). */
export async function generateAll(page, timeout = 300_000, button = 'generate') {
  const errBefore = await visibleError(page);
  await page.click(tid(button));
  await page.waitForFunction(() => window.__studio?.busy() === 'generate', null, { timeout: 10_000, polling: 10 }).catch(() => {});
  await page.waitForFunction(
    (e0) => {
      const err = document.querySelector('[data-testid="error"]');
      const t = err && !err.hidden ? err.textContent.replace(/\s+/g, ' ').trim() : null;
      return window.__studio.busy() === null || (t && t !== e0);
    },
    errBefore,
    { timeout, polling: 50 },
  );
  const err = await visibleError(page);
  if (err && err !== errBefore) throw new Error(`generation failed in the page: ${err}`);
}

/** Bytes that differ between two images. */
export function countDiff(a, b) {
  let n = 0;
  for (let i = 0; i < a.rgba.length; i++) if (a.rgba[i] !== b.rgba[i]) n++;
  return n;
}

/** The tEXt / iTXt chunks of a PNG file (Buffer). */
export function pngText(buf) {
  const out = {};
  let o = 8;
  while (o + 12 <= buf.length) {
    const len = buf.readUInt32BE(o);
    const type = buf.toString('latin1', o + 4, o + 8);
    const data = buf.subarray(o + 8, o + 8 + len);
    const z = data.indexOf(0);
    if (type === 'tEXt') out[data.toString('latin1', 0, z)] = data.toString('latin1', z + 1);
    if (type === 'iTXt') {
      let p = z + 3;
      p = data.indexOf(0, p) + 1;
      p = data.indexOf(0, p) + 1;
      out[data.toString('latin1', 0, z)] = data.toString('utf8', p);
    }
    o += 12 + len;
    if (type === 'IEND') break;
  }
  return out;
}
