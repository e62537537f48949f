// The web worker owns the wasm module, the Session and the GPU. It answers `ToWorker` messages
// with `FromWorker` messages (web/protocol.ts). Requests run one at a time, in order; `cancel`
// bypasses the queue and is handled between two denoising steps, because the Session yields to
// this event loop after each step (`stats`, the memory figures, bypasses it too).
//
// It only relays: the Session owns the model's variant entries (edits, adapters, steering; kept
// parsed in Rust by id, crates/studio-wasm/src/variants.rs) and, before each run, makes the model
// hold the run's variant by changing only what differs (`setVariant`). Files go to the Session as
// `File` / `Blob` objects, read by ranges there, never whole into this worker's heap (the bundled
// model, fetched over HTTP, is the exception: it arrives as bytes).

import init, { createSession, type InitOutput, type Session } from '../pkg/studio_wasm.js';
import { cachedFiles, chooseFiles, cpuRefusal, downloadRepo, listRepo, type RemoteFile } from '../hub/download';
import { MemoryStore, OpfsStore, cacheKey, opfsAvailable, type Store } from '../hub/store';
import { errorMessage, type AttentionMaps, type EditAnatomy, type EntryInfo, type FromWorker, type ModelInfo, type ModelSource, type Phase, type SldStepTerms, type ToWorker } from '../protocol';
import { adapterInfoLabel, adapterName, isSoftwareAdapter, softwareAdapterReason, type AdapterInfoLike } from './engine-choice';
import { destroyGpuDevice, gpuBudget, gpuDeviceOptions, gpuLimits, lastGpuError, watchGpuDevice, type GpuErrorRecord } from './gpu-device';
import { gpuMemoryStats, installGpuAccounting } from './gpu-memory';
import { fetchHeaderPrefix, resolveUrl } from '../hub/download';

/** The dedicated worker's global scope (typed by hand: the DOM and WebWorker libs cannot be mixed). */
const scope = globalThis as unknown as {
  postMessage(message: FromWorker, transfer: Transferable[]): void;
  onmessage: ((ev: MessageEvent<ToWorker>) => void) | null;
};

let wasmReady: Promise<InitOutput> | null = null;
/** The module's memory once it started (the `stats` request reads its size). */
let wasmMemory: WebAssembly.Memory | null = null;
let session: Session | null = null;
/** The URL of the evaluator weights the session holds (`evaluate`), or null. */
let evaluatorFrom: string | null = null;
let store: Promise<Store> | null = null;

function cacheStore(): Promise<Store> {
  store ??= opfsAvailable().then((ok) => (ok ? new OpfsStore() : new MemoryStore()));
  return store;
}

function post(msg: FromWorker, transfer: Transferable[] = []) {
  scope.postMessage(msg, transfer);
}

/** Set once the GPU device is lost: every later failure is that, and the page restarts the engine. */
let deviceLost: { reason: string; message: string } | null = null;

// Before any device exists: every buffer wgpu creates is counted (the `stats` request).
installGpuAccounting();

watchGpuDevice({
  onLost(info) {
    deviceLost = info;
    post({ status: 'device-lost', reason: info.reason, message: info.message });
  },
  // A GPU out of memory leaves invalid buffers behind: the running job ends, and the engine is
  // replaced (whether or not wgpu's own handler traps on it too: the first one to fail it wins).
  onError(e) {
    if (e.kind !== 'out-of-memory' || !running) return;
    failRunning(new Error(e.message), true);
  },
});
gpuDeviceOptions.heldBytes = () => gpuMemoryStats()?.liveBytes ?? null;

/** Whether the session still holds a model (false when it cannot say: a trapped module). */
function stillHoldsModel(): boolean {
  try {
    return session?.hasModel ?? false;
  } catch {
    return false;
  }
}

function fail(phase: Phase, requestId: number | null, e: unknown, modelDropped?: boolean, forceFatal = false) {
  // A trap (Rust panic, out-of-bounds) leaves the module in an unknown state: the UI replaces the worker.
  const fatal = forceFatal || e instanceof WebAssembly.RuntimeError || deviceLost !== null;
  let message = errorMessage(e);
  const gpu = lastGpuError();
  if (deviceLost) {
    message = `The GPU device was lost (${deviceLost.reason}${deviceLost.message ? `: ${deviceLost.message}` : ''}) during this job. The studio starts a new engine and loads the model again, with its entries.`;
  } else if (gpu?.kind === 'out-of-memory' || /out of memory|OutOfMemory/i.test(message)) {
    message = outOfMemoryMessage(gpu ?? { kind: 'out-of-memory', message });
  } else if (fatal) {
    message = `The studio engine crashed (${message}). It restarts on its own and loads the model again.`;
  }
  post({ status: 'error', requestId, phase, message, fatal, ...(modelDropped === undefined ? {} : { modelDropped }) });
}

/** What an out-of-memory error on the GPU says to the user (issue 18: how much was asked, what fits). */
function outOfMemoryMessage(e: GpuErrorRecord): string {
  const limits = gpuLimits();
  const budget = gpuBudget();
  const asked =
    e.askedBytes !== undefined
      ? ` It asked for a buffer of ${formatBytes(e.askedBytes)}${e.heldBytes != null ? ` while its buffers held ${formatBytes(e.heldBytes)}` : ''}.`
      : '';
  const room = budget > 0 ? ` This GPU has ${formatBytes(budget)} for the studio (the stand-in of ?gpuBudget=)${e.heldBytes != null ? `, ${formatBytes(Math.max(0, budget - e.heldBytes))} of it free then` : ''}.` : '';
  const fits = limits ? ` A single buffer may be up to ${formatBytes(limits.maxBufferSize)} (maxBufferSize), ${formatBytes(limits.maxStorageBufferBindingSize)} bound for a kernel; WebGPU does not tell how much memory the GPU has in all.` : '';
  return `The GPU ran out of memory (${e.message}).${asked}${room}${fits} Choose a smaller image size, fewer images at once or a smaller model; the studio starts a new engine and loads the model again.`;
}

function formatBytes(n: number): string {
  return n >= 1e9 ? `${(n / 1e9).toFixed(2)} GB` : n >= 1e6 ? `${(n / 1e6).toFixed(1)} MB` : `${(n / 1e3).toFixed(1)} KB`;
}

/**
 * The info of the adapter WebGPU gives this worker, asked the way burn asks (cubecl-wgpu's
 * `request_adapter`: high performance, no forced fallback); null without WebGPU or an adapter.
 */
async function adapterInfo(): Promise<AdapterInfoLike | null> {
  try {
    type Gpu = { requestAdapter(o?: { powerPreference?: string }): Promise<{ info?: AdapterInfoLike } | null> };
    const gpu = (navigator as unknown as { gpu?: Gpu }).gpu;
    return (await gpu?.requestAdapter({ powerPreference: 'high-performance' }))?.info ?? null;
  } catch {
    return null;
  }
}

/** A readable adapter name: browsers leave wgpu's `name` empty and expose vendor/architecture instead. */
async function adapterLabel(fallback: string): Promise<string> {
  return adapterInfoLabel(await adapterInfo(), fallback);
}

async function fetchBytes(url: string, onChunk: (n: number) => void): Promise<Uint8Array> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`could not fetch ${url}: HTTP ${res.status} ${res.statusText}`);
  const size = Number(res.headers.get('content-length') ?? 0);
  if (!res.body) {
    const b = new Uint8Array(await res.arrayBuffer());
    onChunk(b.length);
    return b;
  }
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.length;
    onChunk(value.length);
  }
  if (size && n !== size) throw new Error(`${url} was cut off after ${n} of ${size} bytes: reload the page`);
  const out = new Uint8Array(n);
  let o = 0;
  for (const c of chunks) {
    out.set(c, o);
    o += c.length;
  }
  return out;
}

/** Downloads (or finds in the cache) a hub model's files, then reads them from the cache. */
async function readHub(requestId: number, source: Extract<ModelSource, { kind: 'hub' }>): Promise<{ map: Map<string, Uint8Array | Blob>; bytes: number }> {
  const st = await cacheStore();
  let files: RemoteFile[];
  let offline = false;
  try {
    files = await listRepo(source.endpoint, source.repo, source.revision);
  } catch (e) {
    // Offline (or the hub is down): a complete cached copy still loads.
    const cached = await cachedFiles(st, source.endpoint, source.repo, source.revision);
    if (!cached.length || chooseFiles(cached).missing.length) throw e;
    files = cached;
    offline = true;
  }
  const chosen = chooseFiles(files);
  if (chosen.missing.length)
    throw new Error(`${source.repo} has no ${chosen.missing.map((m) => `${m}/`).join(', ')} in diffusers layout with .safetensors weights: the studio cannot load it`);
  const refusal = session?.backend === 'cpu' ? cpuRefusal(source.repo, chosen.files) : null;
  if (refusal) throw new Error(refusal);
  // Nothing to download (every weight file complete in the cache): no request at all, and the
  // load's own check reads the cached headers; otherwise the headers are checked by range first.
  const inCache = new Set(offline ? chosen.files.map((f) => f.path) : (await cachedFiles(st, source.endpoint, source.repo, source.revision)).map((f) => f.path));
  const toFetch = chosen.files.filter((f) => f.path.endsWith('.safetensors') && !inCache.has(f.path));
  if (!offline && toFetch.length) await checkBeforeDownload(source, chosen.files);
  await downloadRepo({
    endpoint: source.endpoint,
    repo: source.repo,
    revision: source.revision,
    files: chosen.files,
    store: st,
    pinned: source.pinned,
    onProgress: (p) => post({ status: 'download', requestId, repo: source.repo, files: p, offline }),
  });
  // The cached files themselves: the Session reads them by ranges.
  const map = new Map<string, Uint8Array | Blob>();
  let loaded = 0;
  for (let i = 0; i < chosen.files.length; i++) {
    const f = chosen.files[i];
    post({ status: 'loading', requestId, file: f.path, fileIndex: i, fileCount: chosen.files.length, loaded, total: chosen.bytes });
    const blob = await st.blob(cacheKey(source.endpoint, source.repo, source.revision, f.path));
    loaded += blob.size;
    map.set(f.path, blob);
  }
  return { map, bytes: loaded };
}

/**
 * Reads the headers of a hub model's weight files by range (a few hundred KB) and lets the
 * Session refuse, with the numbers, a model that cannot run here (too large for the CPU path or
 * for this GPU's largest storage buffer) or whose headers are damaged, before gigabytes are
 * downloaded.
 */
async function checkBeforeDownload(source: Extract<ModelSource, { kind: 'hub' }>, files: RemoteFile[]) {
  const weights = files.filter((f) => f.path.endsWith('.safetensors'));
  const prefixes = await Promise.all(weights.map((f) => fetchHeaderPrefix(resolveUrl(source.endpoint, source.repo, source.revision, f.path), f.path)));
  try {
    ready().checkWeightHeaders(
      weights.map((f) => f.path),
      // A size the hub did not list: the largest a wasm32 offset holds (the header's own checks still apply).
      weights.map((f) => f.size ?? 2 ** 32 - 1),
      prefixes,
    );
  } catch (e) {
    throw new Error(`${source.repo}: ${errorMessage(e)}. Nothing was downloaded.`);
  }
}

/** The model's files as a path → bytes or file map, reporting progress per file. */
async function readSource(requestId: number, source: ModelSource): Promise<{ map: Map<string, Uint8Array | Blob>; bytes: number }> {
  if (source.kind === 'hub') return readHub(requestId, source);
  const map = new Map<string, Uint8Array | Blob>();
  const entries =
    source.kind === 'url'
      ? source.files.map((f) => ({ path: f.path, size: f.size }))
      : source.files.map((f) => ({ path: f.path, size: f.file.size }));
  const total = entries.reduce((a, e) => a + e.size, 0);
  let loaded = 0;
  let lastPost = 0;
  const report = (file: string, fileIndex: number, force = false) => {
    const now = performance.now();
    if (force || now - lastPost > 100) {
      lastPost = now;
      post({ status: 'loading', requestId, file, fileIndex, fileCount: entries.length, loaded, total });
    }
  };
  for (let i = 0; i < entries.length; i++) {
    const path = entries[i].path;
    report(path, i, true);
    if (source.kind === 'url') {
      const bytes = await fetchBytes(new URL(path, source.base).href, (n) => {
        loaded += n;
        report(path, i);
      });
      map.set(path, bytes);
    } else {
      // The picked file itself: the Session reads it by ranges (a missing file fails there, named).
      const file = source.files[i].file;
      loaded += file.size;
      map.set(path, file);
    }
  }
  report('', entries.length, true);
  return { map, bytes: total };
}

/** A Session result that is JSON text, parsed. */
function parsed<T>(json: string): T {
  return JSON.parse(json) as T;
}

function ready(): Session {
  if (!session) throw new Error('the engine is not started yet');
  return session;
}

async function handle(msg: ToWorker) {
  switch (msg.type) {
    case 'init': {
      const t0 = performance.now();
      try {
        gpuDeviceOptions.defaultLimits = msg.gpuLimits === 'default';
        gpuDeviceOptions.budgetBytes = msg.gpuBudget ?? 0;
        wasmReady ??= init();
        wasmMemory = (await wasmReady).memory;
        session?.free();
        session = null;
        // Auto skips a software adapter (engine-choice.ts); an explicit WebGPU choice does not.
        const info = msg.backend === 'auto' ? await adapterInfo() : null;
        const skipped = isSoftwareAdapter(info) ? adapterName(info, 'unnamed') : null;
        evaluatorFrom = null;
        session = await createSession(skipped ? 'cpu' : msg.backend, msg.tasksMax);
        post({
          status: 'ready',
          backend: session.backend as 'webgpu' | 'cpu',
          adapter: session.backend === 'webgpu' ? await adapterLabel(session.adapter) : session.adapter,
          fallbackReason: skipped ? softwareAdapterReason(skipped) : (session.fallbackReason ?? null),
          ...(skipped ? { skippedAdapter: skipped } : {}),
          maxStorageBuffer: session.maxStorageBuffer ?? null,
          shaderF16: session.shaderF16,
          precision: session.precision === 'f16' ? 'f16' : 'f32',
          initMs: performance.now() - t0,
        });
      } catch (e) {
        fail('init', null, e);
      }
      return;
    }
    case 'load': {
      const t0 = performance.now();
      try {
        const s = ready();
        const { map, bytes } = await readSource(msg.requestId, msg.source);
        // The session checks the new model, then drops the previous one with its entries.
        const info = parsed<ModelInfo>(s.loadModel(map));
        map.clear();
        const name = msg.source.name;
        const wasmBytes = (await wasmReady)?.memory.buffer.byteLength;
        post({ status: 'loaded', requestId: msg.requestId, name, info, bytes, ms: performance.now() - t0, wasmBytes });
      } catch (e) {
        // The previous model stays loaded while files are read and downloaded and while loadModel
        // checks the new one (configs, headers, anchors, fit); the session says whether it still
        // holds it (not after a trap: that replaces the worker anyway).
        fail('load', msg.requestId, e, !stillHoldsModel());
      }
      return;
    }
    case 'generate': {
      const { requestId, params } = msg;
      try {
        const s = ready();
        s.setVariant(msg.edits);
        s.facilitatedTransport = msg.ft ?? true;
        const r = await s.generate(
          JSON.stringify(params),
          (p: { step: number; total: number; elapsedMs: number; stepMs: number; recordMs: number }) =>
            post({ status: 'progress', requestId, step: p.step, total: p.total, elapsedMs: p.elapsedMs, stepMs: p.stepMs, recordMs: p.recordMs }),
          (p: { step: number; width: number; height: number; rgba: Uint8ClampedArray }) =>
            post({ status: 'preview', requestId, step: p.step, width: p.width, height: p.height, rgba: p.rgba }, [p.rgba.buffer]),
        );
        if (r.status === 'cancelled') {
          post({ status: 'cancelled', requestId, step: r.step, total: r.total });
        } else {
          const rgba = r.rgba as Uint8ClampedArray;
          const attention = (r.attention ?? null) as AttentionMaps | null;
          const timeline = (r.timeline ?? null) as Uint8ClampedArray | null;
          const transfer: ArrayBuffer[] = [rgba.buffer as ArrayBuffer];
          if (attention) transfer.push(attention.maps.buffer as ArrayBuffer);
          if (timeline) transfer.push(timeline.buffer as ArrayBuffer);
          post(
            {
              status: 'image',
              requestId,
              width: r.width,
              height: r.height,
              rgba,
              timing: r.timing,
              params,
              promptTruncated: r.promptTruncated,
              steering: r.steering ?? null,
              backend: s.backend as 'webgpu' | 'cpu',
              edits: [...msg.edits],
              permeabilities: r.permeabilities ?? {},
              attention,
              timeline,
              sldTerms: (r.sldTerms ?? []) as SldStepTerms[],
            },
            transfer,
          );
        }
      } catch (e) {
        fail('generate', requestId, e);
      }
      return;
    }
    case 'entry-add': {
      try {
        const r = parsed<{ entry: EntryInfo; ms: number }>(await ready().addEntry(msg.id, msg.file, msg.data));
        post({ status: 'entry', requestId: msg.requestId, entry: r.entry, ms: r.ms, computed: false });
      } catch (e) {
        fail('edit', msg.requestId, e);
      }
      return;
    }
    case 'entry-compute': {
      try {
        const r = parsed<{ entry: EntryInfo; ms: number }>(await ready().computeEntry(msg.id, JSON.stringify(msg.request)));
        post({ status: 'entry', requestId: msg.requestId, entry: r.entry, ms: r.ms, computed: true });
      } catch (e) {
        fail('erase', msg.requestId, e);
      }
      return;
    }
    case 'entry-remove': {
      try {
        post({ status: 'entry-removed', requestId: msg.requestId, id: msg.id, removed: ready().removeEntry(msg.id) });
      } catch (e) {
        fail('edit', msg.requestId, e);
      }
      return;
    }
    case 'entry-export': {
      try {
        const r = ready().exportEntry(msg.id) as { file: string; data: Blob | Uint8Array };
        const data = r.data instanceof Blob ? r.data : new Blob([r.data as BlobPart]);
        post({ status: 'exported', requestId: msg.requestId, id: msg.id, file: r.file, data });
      } catch (e) {
        fail('edit', msg.requestId, e);
      }
      return;
    }
    case 'evaluate': {
      try {
        const s = ready();
        if (evaluatorFrom !== msg.evaluator.weights) {
          const get = async (url: string) => {
            const r = await fetch(new URL(url, self.location.href));
            if (!r.ok) throw new Error(`the classroom evaluator could not be fetched (${url}: HTTP ${r.status})`);
            return r;
          };
          const config = await (await get(msg.evaluator.config)).text();
          const weights = new Uint8Array(await (await get(msg.evaluator.weights)).arrayBuffer());
          s.loadEvaluator(config, weights);
          evaluatorFrom = msg.evaluator.weights;
        }
        const classes = parsed<Record<string, string>[]>((await s.evaluate(msg.rgb)) as string);
        if (classes.length !== msg.count) throw new Error(`the evaluator answered for ${classes.length} of ${msg.count} images`);
        post({ status: 'evaluation', requestId: msg.requestId, classes });
      } catch (e) {
        fail('generate', msg.requestId, e);
      }
      return;
    }
    case 'entry-anatomy': {
      try {
        const anatomy = parsed<EditAnatomy>(await ready().entryAnatomy(msg.id));
        post({ status: 'anatomy', requestId: msg.requestId, id: msg.id, anatomy });
      } catch (e) {
        fail('edit', msg.requestId, e);
      }
      return;
    }
    case 'digest': {
      try {
        post({ status: 'digest', requestId: msg.requestId, sha256: (await ready().weightsDigest()) as string });
      } catch (e) {
        fail('edit', msg.requestId, e);
      }
      return;
    }
    case 'stats': {
      // Answered at once, also while a job runs: what the wasm memory and the GPU hold now.
      post({ status: 'stats', requestId: msg.requestId, wasmBytes: wasmMemory?.buffer.byteLength ?? 0, gpu: gpuMemoryStats() });
      return;
    }
    case 'lose-device':
      destroyGpuDevice();
      return;
    case 'cancel':
      session?.cancel();
      return;
  }
}

/** The request running now (its id and phase), for a failure that reaches no request's `catch`. */
let running: { requestId: number | null; phase: Phase } | null = null;

const PHASES: Partial<Record<ToWorker['type'], Phase>> = { init: 'init', load: 'load', generate: 'generate', 'entry-add': 'edit', 'entry-compute': 'erase', 'entry-remove': 'edit', 'entry-export': 'edit', 'entry-anatomy': 'edit', evaluate: 'generate', digest: 'edit' };

/**
 * A trap outside any request's call into wasm — wgpu's uncaptured-error handler panics from a
 * GPU event (an out-of-memory or validation error reported after the call that caused it) — would
 * otherwise leave the running request waiting forever: it is that request's failure, fatal.
 */
function onEscapedError(e: unknown) {
  if (!(e instanceof WebAssembly.RuntimeError) && deviceLost === null) return;
  failRunning(e);
}

/** Ends the running request (if any) with `e`, outside its own call into wasm. */
function failRunning(e: unknown, forceFatal = false) {
  const r = running;
  running = null;
  fail(r?.phase ?? 'generate', r?.requestId ?? null, e, undefined, forceFatal);
}
(globalThis as unknown as { addEventListener(t: string, f: (ev: { error?: unknown; reason?: unknown; preventDefault(): void }) => void): void }).addEventListener('error', (ev) => {
  if (ev.error instanceof WebAssembly.RuntimeError) {
    ev.preventDefault();
    onEscapedError(ev.error);
  }
});
(globalThis as unknown as { addEventListener(t: string, f: (ev: { reason?: unknown; preventDefault(): void }) => void): void }).addEventListener('unhandledrejection', (ev) => {
  if (ev.reason instanceof WebAssembly.RuntimeError) {
    ev.preventDefault();
    onEscapedError(ev.reason);
  }
});

/** Requests run one after another; `cancel` must reach a running generation at once. */
let queue: Promise<void> = Promise.resolve();
scope.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === 'cancel' || msg.type === 'lose-device' || msg.type === 'stats') {
    void handle(msg);
    return;
  }
  queue = queue
    .then(async () => {
      running = { requestId: 'requestId' in msg ? msg.requestId : null, phase: PHASES[msg.type] ?? 'generate' };
      await handle(msg);
      running = null;
    })
    .catch(() => {});
};
