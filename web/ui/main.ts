// The page's boot: the store, the engine client and the panels, wired together. The page never
// touches wasm or the GPU: a web worker (web/worker/worker.ts) does, through the typed messages
// of web/protocol.ts, which web/ui/engine-client.ts sends and answers by request id.
//
//   store.ts          page state; panels subscribe and render from it
//   engine-client.ts  the worker: start / restart, request → Promise, engine events
//   dom.ts            element lookup, status line, error box
//   panels/           model picker, cache, erase form, variant list, generate, results; the teaching
//                     views: attention, timeline, anatomy ("what it does"), sweep, lessons
//   equations.ts, lessons.ts, sweep.ts   the teaching views' pure parts (MathML, lesson data, sweep scores)
//   drop.ts, share-link.ts (share.ts: the hash format)

import type { AttentionMaps, FromWorker, GpuMemoryStats } from '../protocol';
import { hubEndpointFrom } from '../hub/presets';
import { urlSettings } from './logic';
import { fromHash } from './share';
import { Store, enabledEdits, idleRun, initialState } from './store';
import { EngineClient, type ErrorMsg } from './engine-client';
import { failureStatus, failureTitle, type Ctx } from './context';
import { initErrorBox, setStatus, showError } from './dom';
import { createModelPicker, fetchBundled } from './panels/model-picker';
import { createCachePanel } from './panels/cache';
import { createEraseForm } from './panels/erase-form';
import { createVariantList } from './panels/variant-list';
import { createGenerate } from './panels/generate';
import { createResults } from './panels/results';
import { createAttentionPanel } from './panels/attention';
import { createTimelinePanel } from './panels/timeline';
import { createAnatomyPanel } from './panels/anatomy';
import { createLessons } from './panels/lessons';
import { createSweep } from './panels/sweep';
import { initDrop } from './drop';
import { initShareButton } from './share-link';
import { createRecovery } from './recovery';

declare global {
  interface Window {
    __studio?: {
      ready(): boolean;
      busy(): string | null;
      events: FromWorker[];
      /** Steps at which previews arrived (all runs). */
      previews: number[];
      /** Timings of every finished image, in order (benchmarks read them). */
      timings: { totalMs: number; perStepMs: number; stepsMs: number; decodeMs: number }[];
      /** performance.now() when the first image arrived. */
      firstImageAt: number | null;
      edits(): { id: string; enabled: boolean; file: string }[];
      /** SHA-256 of the loaded weights as they are now (the bad-input tests compare it), or the error. */
      digest(): Promise<string>;
      /** Destroys the engine's GPU device (the device-loss test). */
      loseDevice(): void;
      /** The engine's memory now: wasm memory bytes and live GPU buffers (the soak test samples it). */
      stats(): Promise<{ wasmBytes: number; gpu: GpuMemoryStats | null }>;
      /** Sends a cancel to the engine whatever the page is doing (the soak test cancels at every stage). */
      cancel(): void;
      /** The attention maps of the last original / edited image (the teaching tests compare them with the CLI's). */
      attention(kind: 'original' | 'edited'): (Omit<AttentionMaps, 'maps'> & { maps: number[] }) | null;
    };
  }
}

const settings = urlSettings(location.search);
/** Settings restored from the URL hash (a shared experiment). */
const shared = fromHash(location.hash);
/**
 * `?hub=` points the hub presets at another server with the hub's URL layout (a mirror; tests use
 * a local one): this origin or a host this build's Content-Security-Policy allows, else refused.
 */
const hubChoice = hubEndpointFrom(new URLSearchParams(location.search).get('hub'), __STUDIO_HUB_HOSTS__, location.href);
const hubEndpoint = hubChoice.endpoint;

const store = new Store(initialState(settings.backend, shared));
const engine = new EngineClient();

function startEngine() {
  store.update((s) => {
    s.engine = { ...s.engine, status: 'starting', backend: null };
    s.busy = null;
    s.run = idleRun();
  });
  engine.start(store.state.backendChoice, settings.tasksMax, settings.gpuLimits, settings.gpuBudget);
  setStatus('Starting the engine…');
}

function failed(m: ErrorMsg) {
  store.update((s) => {
    s.busy = null;
    s.run = idleRun();
  });
  generate.clearProgressText();
  // The wasm module trapped, or the GPU went away: a fresh engine loads the model and its entries again.
  if (m.fatal) return recovery.recover(failureTitle(m.phase), m.message);
  showError(failureTitle(m.phase), m.message);
  setStatus(failureStatus(m.phase));
}

const recovery = createRecovery({ store, engine, startEngine });
const ctx: Ctx = { store, engine, settings, hubEndpoint, startEngine, failed, recover: recovery.recover };

initErrorBox();
if (hubChoice.refused) showError('This hub address is not allowed', hubChoice.refused, true);
const variantList = createVariantList(ctx);
const results = createResults(ctx, { ft: variantList.ft });
createAttentionPanel(ctx, { regenerate: () => generate.run() });
createTimelinePanel(ctx);
createAnatomyPanel(ctx);
const erase = createEraseForm(ctx, { onConcepts: (concepts) => generate.defaultGrid(concepts) });
createLessons(ctx, { compute: (request) => erase.compute(request, null) });
const generate = createGenerate(ctx, { results, ft: variantList.ft, eraseConcepts: erase.concepts });
createSweep(ctx, { formParams: () => generate.formParams() });
const picker = createModelPicker(ctx, {
  onLoaded: (info) => {
    generate.applyModel(info);
    void recovery.afterLoad();
  },
  recoveryLoadFailed: recovery.loadFailed,
});
createCachePanel(ctx);
generate.applyShared(shared);
erase.applyShared(shared);
erase.refreshForm();
initDrop({
  canLoad: () => store.state.busy === null && store.state.engine.status === 'ready',
  loadFolder: picker.loadLocal,
  addFiles: erase.addFiles,
});
initShareButton(() => ({
  ...picker.shareValues(),
  ...generate.shareValues(),
  ...erase.shareValues(),
  edits: enabledEdits(store.state).map((e) => e.info.file),
}));
engine.on(picker.onEngine);
engine.on((e) => {
  if (e.kind === 'device-lost')
    recovery.recover(
      'The GPU device was lost',
      `WebGPU lost the device (${e.msg.reason}${e.msg.message ? `: ${e.msg.message}` : ''}): a driver reset, the GPU going to sleep or another tab taking it. The studio starts a new engine on a new device and loads the model and its entries again.`,
    );
});

window.__studio = {
  ready: () => store.state.engine.status === 'ready' && store.state.busy === null && store.state.model !== null,
  busy: () => store.state.busy,
  events: engine.log,
  previews: generate.telemetry.previews,
  timings: generate.telemetry.timings,
  get firstImageAt() {
    return generate.telemetry.firstImageAt;
  },
  edits: () => store.state.edits.map((e) => ({ id: e.id, enabled: e.enabled, file: e.info.file })),
  digest: async () => {
    const m = await engine.request({ type: 'digest' });
    return m === null ? 'superseded' : m.status === 'digest' ? m.sha256 : `error: ${m.message}`;
  },
  loseDevice: () => engine.loseDevice(),
  stats: async () => {
    const m = await engine.stats();
    if (!m) throw new Error('the engine restarted before it answered');
    return { wasmBytes: m.wasmBytes, gpu: m.gpu };
  },
  cancel: () => engine.cancel(),
  attention: (kind) => {
    const a = store.state.results[kind]?.attention;
    return a ? { ...a, maps: Array.from(a.maps) } : null;
  },
};

startEngine();
void fetchBundled().then((models) => picker.boot(models, shared.model ?? settings.model, shared.hubRepo));
