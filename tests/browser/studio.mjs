// End-to-end test of the browser studio in headless Chromium (playwright-core, Debian chromium).
//
// Serves web/dist with `vite preview` on 127.0.0.1, then, with the tiny SD-1 fixture:
//  1. WebGPU (?backend=webgpu: SwiftShader here): load, generate, compare the pixels with the
//     native CLI's (`studio generate ... --dump`) for the same prompt, seed, steps and scheduler;
//  2. cancel mid-run, then generate again;
//  3. a corrupt weight file, a folder missing a component and a component without weights,
//     each picked through "Open folder": a clear data-testid="error" message, page still usable;
//  4. the CPU fallback (?backend=cpu): generate and compare with the CLI;
//  5. WebGPU absent (Chromium without --enable-unsafe-webgpu): a clear message, CPU path works;
//     Auto with only the software adapter (SwiftShader): the CPU path, the reason shown;
//  6. tests/browser/features.mjs: edit files (apply, compare, toggle, revert bit for bit, export),
//     grid mode, previews, PNG text chunks, the share URL, and hub downloads from a local mirror;
//  7. tests/browser/bad-inputs.mjs: the bad-input corpus, hostile arguments and share links in the
//     page (weights digest unchanged), device loss and recovery, a model too large for the adapter;
//  8. tests/browser/soak.mjs: 200 generations in one page (wasm memory flat, GPU memory level) and
//     a cancel at every stage (the next image exact);
//  6b. tests/browser/teaching.mjs: the teaching views (attention maps equal `studio attention`'s);
//  9. tests/browser/security.mjs: the Content-Security-Policy, ?hub= hosts, what share links hold,
//     and at the end every request of the whole session checked to be to the studio's own origin.
// Screenshots and a results.json go to tests/browser/out/ (git-ignored).
//
// Env: STUDIO_CLI (path of the `studio` binary; the comparison is skipped with a notice if it is
// missing), CHROMIUM (default /usr/bin/chromium), KEEP_GOING=1 (run every case even after a failure).

import { existsSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CLASSROOM, CLI, OUT, PARAMS, TOL_CPU, TOL_WEBGPU, assert, cliImage, distinctPixels, expectLoadError, fixtureVariant, generate, launch, log, maxDiff,
  openPage, results, runCase, serve, setParams, tid, visibleError, waitReady,
} from './lib.mjs';
import { featureCases } from './features.mjs';
import { badInputCases, makeHugeRepo } from './bad-inputs.mjs';
import { originCase, recordRequests, securityCases } from './security.mjs';
import { soakCases } from './soak.mjs';
import { teachingCases } from './teaching.mjs';
import { lessonCases } from './lessons.mjs';

const haveCli = existsSync(CLI);
if (!haveCli) log(`NOTE: ${CLI} not found: the browser-vs-CLI comparison is skipped (build it with cargo build -p cli)`);
const cli = haveCli ? cliImage(PARAMS) : null;

// A hub-mirror repo too large for a GPU at WebGPU's default limits (bad-inputs.mjs; sparse, only its header is read).
process.env.STUDIO_HUB_MIRROR_REPOS = [process.env.STUDIO_HUB_MIRROR_REPOS, `erasure-studio/huge-text-encoder=${makeHugeRepo()}`].filter(Boolean).join(';');
const { url, proc } = await serve();
log('serving', url);
const launched = [];
/** Every request of the session (security.mjs: all must go to the studio's own origin). */
const requests = [];
let exitCode = 0;
try {
  const gpu = await launch(true);
  launched.push(gpu);
  recordRequests(gpu.ctx, requests);

  await runCase('webgpu: load, generate, compare with the CLI', async () => {
    const { page, consoleErrors, t0 } = await openPage(gpu.ctx, `${url}?model=tiny-sd1&backend=webgpu`);
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
    const { page } = await openPage(gpu.ctx, `${url}?model=tiny-sd1&backend=webgpu`);
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
    const { page } = await openPage(gpu.ctx, `${url}?model=tiny-sd1&backend=webgpu`);
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
        const { page, t0 } = await openPage(gpu.ctx, `${url}?backend=${backend}`);
        await waitReady(page);
        const selected = await page.inputValue(tid('model-select'));
        assert(selected === 'classroom', `the default model is ${selected}, expected the classroom model`);
        // Its studio.json sets the form's guidance and steps (the model card recommends 3 and 25).
        const defaults = { guidance: await page.inputValue(tid('guidance')), steps: await page.inputValue(tid('steps')) };
        assert(defaults.guidance === '3' && defaults.steps === '25', `studio.json defaults not applied: ${JSON.stringify(defaults)}`);
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

  await featureCases({ ctx: gpu.ctx, url });
  await teachingCases({ ctx: gpu.ctx, url });
  await lessonCases({ ctx: gpu.ctx, url });
  await badInputCases({ ctx: gpu.ctx, url });
  await soakCases({ ctx: gpu.ctx, url });
  await securityCases({ ctx: gpu.ctx, url });

  await runCase('auto on a software adapter: the CPU path, with the reason', async () => {
    // Auto passes over SwiftShader (isFallbackAdapter): it is slower than the CPU path.
    const { page, consoleErrors } = await openPage(gpu.ctx, `${url}?model=tiny-sd1`);
    await waitReady(page);
    const engine = (await page.textContent(tid('engine'))).trim();
    assert(/^CPU/.test(engine) && /software/.test(engine), `expected the CPU engine, the engine says ${engine}`);
    const msg = await visibleError(page);
    assert(msg && /software/.test(msg) && /adapter/.test(msg) && /swiftshader/i.test(msg) && /CPU/.test(msg), `expected a software-adapter reason, got ${msg}`);
    await page.fill(tid('steps'), '2');
    const img = await generate(page);
    assert(img.backend === 'cpu', `image made on ${img.backend}`);
    await page.screenshot({ path: join(OUT, 'auto-software-adapter.png') });
    assert(consoleErrors.length === 0, `console errors: ${consoleErrors.slice(0, 5).join(' | ')}`);
    await page.close();
    return { engine, message: msg };
  });

  await runCase('no WebGPU: a clear message and the CPU path', async () => {
    const plain = await launch(false);
    launched.push(plain);
    recordRequests(plain.ctx, requests);
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

  await originCase(url, requests);
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
