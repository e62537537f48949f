// Screenshots of the studio's main views for the README (docs/screenshots/), with the bundled
// classroom model on the CPU path (fast here; SwiftShader takes seconds per step):
//   studio-main.png      one prompt, one image
//   studio-compare.png   UCE computed in the page ("skull"), original vs edited + difference heat-map
//   studio-grid.png      prompts × variants (the erased concept vs its neighbours)
//   studio-hub.png       a hub download in progress (from the local mirror of vite.config.ts)
//   studio-steering.png  SLD (inference-time) as a variant: "a skull" original vs steered
//   studio-variants.png  the erase panel with an SPM, a LoRA and SLD listed (tiny SD-1 fixture,
//                        the SPM/LoRA files of tests/fixtures/reference/spm)
// Not part of `npm test`: run `node tests/browser/screenshots.mjs` after scripts/build-web.sh
// (SHOTS=variants: only the last two).

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, generateAll, launch, log, serve, setParams, tid, waitReady } from './lib.mjs';

const SPM_DIR = join(ROOT, 'tests/fixtures/reference/spm');

const SHOTS = join(ROOT, 'docs/screenshots');
mkdirSync(SHOTS, { recursive: true });
const CONCEPT = process.env.CONCEPT ?? 'skull';
const PRESERVE = process.env.PRESERVE ?? 'a red circle; a blue star; a green triangle';

const { url, proc } = await serve();
const b = await launch(true);
try {
  if (process.env.SHOTS !== 'variants') await mainShots();
  await variantShots();
} finally {
  await b.ctx.close();
  proc.kill();
}

async function variantShots() {
  const page = await b.ctx.newPage();
  await page.setViewportSize({ width: 1360, height: 900 });
  await page.goto(`${url}?backend=cpu`);
  await waitReady(page, 300_000);
  const base = { prompt: `a ${CONCEPT}`, negativePrompt: '', seed: 42, steps: 20, guidance: 3, size: 64, scheduler: 'ddim' };
  await setParams(page, base);
  await page.selectOption(tid('erase-method'), 'sld');
  await page.fill(tid('erase-concepts'), CONCEPT);
  await page.fill(tid('erase-params'), 'preset=strong');
  await page.click(tid('erase-apply'));
  await page.waitForFunction(() => window.__studio.edits().length === 1 && window.__studio.busy() === null, null, { timeout: 60_000 });
  await generateAll(page, 900_000);
  await page.waitForFunction(() => !document.querySelector('[data-testid="download-edited"]').hidden, null, { timeout: 10_000 });
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, 'studio-steering.png') });
  log('studio-steering.png');

  const tiny = await b.ctx.newPage();
  await tiny.setViewportSize({ width: 1360, height: 900 });
  await tiny.goto(`${url}?backend=cpu&model=tiny-sd1`);
  await waitReady(tiny, 300_000);
  for (const f of ['sd1_spm_a.safetensors', 'sd1_lora_r4.safetensors']) {
    const n = await tiny.evaluate(() => window.__studio.edits().length);
    await tiny.setInputFiles(tid('edit-input'), join(SPM_DIR, f));
    await tiny.waitForFunction((k) => window.__studio.edits().length > k && window.__studio.busy() === null, n, { timeout: 60_000 });
  }
  await tiny.selectOption(tid('erase-method'), 'sld');
  await tiny.fill(tid('erase-params'), 'preset=medium');
  await tiny.click(tid('erase-apply'));
  await tiny.waitForFunction(() => window.__studio.edits().length === 3 && window.__studio.busy() === null, null, { timeout: 60_000 });
  await tiny.click(tid('edit-toggle-1'));
  await tiny.locator('#erase-card').screenshot({ path: join(SHOTS, 'studio-variants.png') });
  log('studio-variants.png');
}

async function mainShots() {
  const page = await b.ctx.newPage();
  await page.setViewportSize({ width: 1360, height: 900 });
  await page.goto(`${url}?backend=cpu`);
  await waitReady(page, 300_000);
  const base = { prompt: 'a big red star on a blue striped background', negativePrompt: '', seed: 42, steps: 20, guidance: 3, size: 64, scheduler: 'ddim' };
  await setParams(page, base);
  await generateAll(page, 600_000);
  await page.screenshot({ path: join(SHOTS, 'studio-main.png') });
  log('studio-main.png');

  await page.selectOption(tid('erase-method'), 'uce');
  await page.fill(tid('erase-concepts'), CONCEPT);
  await page.fill(tid('erase-preserve'), PRESERVE);
  // The paper's token choice (last word through the padding) erases this model's skull; the
  // current code's last token alone leaves it recognisable at 64 px.
  await page.fill(tid('erase-params'), process.env.ERASE_PARAMS ?? 'tokens=legacy');
  await page.click(tid('erase-apply'));
  await page.waitForFunction(() => window.__studio.edits().length === 1 && window.__studio.busy() === null, null, { timeout: 300_000 });
  await setParams(page, { ...base, prompt: `a ${CONCEPT}` });
  await generateAll(page, 600_000);
  await page.waitForFunction(() => !document.querySelector('[data-testid="download-edited"]').hidden, null, { timeout: 10_000 });
  await page.screenshot({ path: join(SHOTS, 'studio-compare.png') });
  log('studio-compare.png');
  await page.check(tid('view-grid'));
  await setParams(page, { ...base, steps: 15 });
  await generateAll(page, 900_000);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: join(SHOTS, 'studio-grid.png') });
  log('studio-grid.png');

  const hub = await b.ctx.newPage();
  await hub.setViewportSize({ width: 1360, height: 900 });
  await hub.goto(`${url}?backend=cpu&hub=${encodeURIComponent(`${url}hub-mirror/slow`)}`);
  await waitReady(hub, 300_000);
  await hub.selectOption(tid('model-select'), 'hub:other');
  await hub.fill(tid('hub-repo'), 'erasure-studio/tiny-sd1');
  await hub.click(tid('hub-download'));
  await hub.waitForFunction(
    () => document.querySelector('[data-testid="download-list"] li[data-path="unet/diffusion_pytorch_model.safetensors"]')?.dataset.state === 'downloading',
    null,
    { timeout: 60_000 },
  );
  await hub.waitForTimeout(1500);
  await hub.screenshot({ path: join(SHOTS, 'studio-hub.png') });
  log('studio-hub.png');
}
