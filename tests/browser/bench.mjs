// Browser benchmark (scripts/bench-web.sh): the studio in headless Chromium against native
// baselines measured in the same run on the same machine.
//  - time per denoising step (UNet batch 2 with CFG + scheduler): the browser's CPU path (ndarray
//    in wasm) vs the same step loop natively on ndarray (crates/studio-wasm/examples/step_bench.rs),
//    and WebGPU on SwiftShader vs native wgpu on Mesa llvmpipe (both software Vulkan-class rasterisers);
//  - page load → first image (navigation start to pixels, engine start and model load included)
//    vs the native CLI's `studio generate` process wall time for the same image;
// for the classroom model (64 px) and the tiny SD-1 fixture (16 px), 10 DDIM steps, guidance 7.5.
// Prints a markdown table and writes tests/browser/out/bench.json.
// Env: STEP_BENCH (native step_bench binary), STUDIO_RELEASE_CLI (release `studio`),
// BENCH_PATHS=cpu (or webgpu) measures one path only (both by default).

import { execFileSync } from 'node:child_process';
import { existsSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { CLASSROOM, FIXTURE, OUT, launch, log, serve, tid } from './lib.mjs';

const STEP_BENCH = process.env.STEP_BENCH;
const CLI = process.env.STUDIO_RELEASE_CLI;
const PATHS = (process.env.BENCH_PATHS ?? 'cpu,webgpu').split(',');
const STEPS = 10;
const REPEATS = 3;
const MODELS = [
  { id: 'classroom', dir: CLASSROOM, size: 64 },
  { id: 'tiny-sd1', dir: FIXTURE, size: 16 },
].filter((m) => existsSync(join(m.dir, 'unet')));

const median = (v) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)];
const hash = (size) => `#p=${encodeURIComponent('a big red star on a blue striped background')}&seed=1234&steps=${STEPS}&g=7.5&size=${size}&sch=ddim&prev=0`;

async function browserRun(url, m, backend) {
  // A fresh browser profile: nothing cached, as a first visit.
  const b = await launch(true);
  try {
    const page = await b.ctx.newPage();
    const t0 = Date.now();
    await page.goto(`${url}?model=${m.id}&backend=${backend}${hash(m.size)}`);
    await page.waitForFunction(() => window.__studio?.ready(), null, { timeout: 600_000, polling: 20 });
    const engine = (await page.textContent(tid('engine'))).trim();
    for (let i = 0; i < REPEATS + 1; i++) {
      await page.click(tid('generate'));
      await page.waitForFunction((n) => window.__studio.timings.length > n && window.__studio.ready(), i, { timeout: 600_000, polling: 20 });
    }
    const r = await page.evaluate(() => ({ timings: window.__studio.timings, first: window.__studio.firstImageAt, nav: performance.timeOrigin }));
    const firstImageMs = r.nav + r.first - t0;
    const steps = r.timings.slice(1).map((t) => t.perStepMs);
    return { engine, pageLoadToFirstImageMs: firstImageMs, perStepMs: median(steps), firstRunPerStepMs: r.timings[0].perStepMs };
  } finally {
    await b.ctx.close();
    rmSync(b.profile, { recursive: true, force: true });
  }
}

function native(m, device) {
  if (!STEP_BENCH) return null;
  const out = execFileSync(STEP_BENCH, [m.dir, device, String(m.size), String(STEPS), String(REPEATS)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  return JSON.parse(out.trim().split('\n').pop());
}

function cliWall(m, device) {
  if (!CLI) return null;
  const t = Date.now();
  execFileSync(CLI, ['generate', '--model', m.dir, '--prompt', 'a big red star on a blue striped background', '--steps', String(STEPS), '--guidance', '7.5', '--scheduler', 'ddim',
    '--height', String(m.size), '--width', String(m.size), '--seed', '1234', '--device', device, '--out', join(OUT, `bench-${m.id}-${device}.png`)], { stdio: 'ignore' });
  return Date.now() - t;
}

const { url, proc } = await serve();
const rows = [];
try {
  for (const m of MODELS) {
    log(`${m.id}: native`);
    const cpu = PATHS.includes('cpu');
    const gpu = PATHS.includes('webgpu');
    const nCpu = cpu ? native(m, 'ndarray') : null;
    const nGpu = gpu ? native(m, 'wgpu') : null;
    const cliCpu = cpu ? cliWall(m, 'ndarray') : null;
    const cliGpu = gpu ? cliWall(m, 'wgpu') : null;
    log(`${m.id}: browser CPU`);
    const bCpu = cpu ? await browserRun(url, m, 'cpu') : null;
    log(`${m.id}: browser WebGPU`);
    const bGpu = gpu ? await browserRun(url, m, 'webgpu') : null;
    rows.push({ model: m.id, size: m.size, steps: STEPS, native: { ndarray: nCpu, wgpu: nGpu, cliWallMs: { ndarray: cliCpu, wgpu: cliGpu } }, browser: { cpu: bCpu, webgpu: bGpu } });
  }
} finally {
  proc.kill();
}

const f = (x, d = 1) => (x == null ? '–' : x.toFixed(d));
const ratio = (a, b) => (a == null || b == null ? '–' : `${(a / b).toFixed(2)}×`);
const lines = [
  '| model | path | browser ms/step | native ms/step (baseline) | ratio | page load → first image | native CLI wall (baseline) | ratio |',
  '|---|---|---|---|---|---|---|---|',
];
for (const r of rows) {
  if (r.browser.cpu)
    lines.push(
      `| ${r.model} ${r.size}px | CPU: wasm ndarray vs native ndarray | ${f(r.browser.cpu.perStepMs)} | ${f(r.native.ndarray?.perStepMs)} | ${ratio(r.browser.cpu.perStepMs, r.native.ndarray?.perStepMs)} | ${f(r.browser.cpu.pageLoadToFirstImageMs, 0)} ms | ${f(r.native.cliWallMs.ndarray, 0)} ms | ${ratio(r.browser.cpu.pageLoadToFirstImageMs, r.native.cliWallMs.ndarray)} |`,
    );
  if (r.browser.webgpu)
    lines.push(
      `| ${r.model} ${r.size}px | GPU: SwiftShader WebGPU vs native wgpu on llvmpipe | ${f(r.browser.webgpu.perStepMs)} | ${f(r.native.wgpu?.perStepMs)} | ${ratio(r.browser.webgpu.perStepMs, r.native.wgpu?.perStepMs)} | ${f(r.browser.webgpu.pageLoadToFirstImageMs, 0)} ms | ${f(r.native.cliWallMs.wgpu, 0)} ms | ${ratio(r.browser.webgpu.pageLoadToFirstImageMs, r.native.cliWallMs.wgpu)} |`,
    );
}
console.log(lines.join('\n'));
writeFileSync(join(OUT, 'bench.json'), JSON.stringify(rows, null, 2));
log(`wrote ${join(OUT, 'bench.json')}`);
