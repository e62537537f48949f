// The web worker owns the wasm module, the Session and the GPU. It answers `ToWorker` messages
// with `FromWorker` messages (web/protocol.ts). Requests run one at a time, in order; `cancel`
// bypasses the queue and is handled between two denoising steps, because the Session yields to
// this event loop after each step.
//
// Edits: the worker keeps every edit file the page added (id → bytes) and, before each run,
// applies / reverts so that exactly the run's `edits` are active. Reverting restores the
// original tensors bit for bit (erasure::EditStack), so "original vs edited" comparisons run on
// one loaded model.
//
// SPM / LoRA adapters and steering are variant entries too (same ids, same toggles): an
// adapter file is attached on top of the edits (the Session takes adapters off while edits
// change and puts them back), a steering entry becomes `params.steering` of the runs whose
// variant includes it, and nothing else. LEACE / INLP erasers (fitted here or added as files)
// and Ring-A-Bell probes live in the Session by the entry's id; their steering names that id.

import init, { Session, createSession, type InitOutput } from '../pkg/studio_wasm.js';
import { cachedFiles, chooseFiles, cpuRefusal, downloadRepo, listRepo, type RemoteFile } from '../hub/download';
import { MemoryStore, OpfsStore, cacheKey, opfsAvailable, type Store } from '../hub/store';
import {
  errorMessage,
  type EditInfo,
  type FromWorker,
  type GenerateParams,
  type ModelInfo,
  type ModelSource,
  type Phase,
  type SteererInfo,
  type SteeringRequest,
  type ToWorker,
} from '../protocol';
import { steererEntry } from '../ui/variants';
import { adapterInfoLabel, adapterName, isSoftwareAdapter, softwareAdapterReason, type AdapterInfoLike } from './engine-choice';

/** The dedicated worker's global scope (typed by hand: the DOM and WebWorker libs cannot be mixed). */
const scope = globalThis as unknown as {
  postMessage(message: FromWorker, transfer: Transferable[]): void;
  onmessage: ((ev: MessageEvent<ToWorker>) => void) | null;
};

let wasmReady: Promise<InitOutput> | null = null;
let session: Session | null = null;
/** What the page added to this model, by id: edit files, adapter files, steering. */
type Entry =
  | { kind: 'edit'; file: string; bytes: Uint8Array }
  | { kind: 'adapter'; file: string; bytes: Uint8Array; adapterKind: 'spm' | 'lora'; scale: number }
  | { kind: 'steer'; steering: SteeringRequest };
const library = new Map<string, Entry>();
let store: Promise<Store> | null = null;

function cacheStore(): Promise<Store> {
  store ??= opfsAvailable().then((ok) => (ok ? new OpfsStore() : new MemoryStore()));
  return store;
}

function post(msg: FromWorker, transfer: Transferable[] = []) {
  scope.postMessage(msg, transfer);
}

function fail(phase: Phase, requestId: number | null, e: unknown, modelDropped?: boolean) {
  // A trap (Rust panic, out-of-bounds) leaves the module in an unknown state: the UI replaces the worker.
  const fatal = e instanceof WebAssembly.RuntimeError;
  let message = errorMessage(e);
  if (fatal) message = `The studio engine crashed (${message}). It restarts on its own; reload the model and try again.`;
  post({ status: 'error', requestId, phase, message, fatal, ...(modelDropped === undefined ? {} : { modelDropped }) });
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
async function readHub(requestId: number, source: Extract<ModelSource, { kind: 'hub' }>): Promise<{ map: Map<string, Uint8Array>; bytes: number }> {
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
  await downloadRepo({
    endpoint: source.endpoint,
    repo: source.repo,
    revision: source.revision,
    files: chosen.files,
    store: st,
    pinned: source.pinned,
    onProgress: (p) => post({ status: 'download', requestId, repo: source.repo, files: p, offline }),
  });
  const map = new Map<string, Uint8Array>();
  let loaded = 0;
  for (let i = 0; i < chosen.files.length; i++) {
    const f = chosen.files[i];
    post({ status: 'loading', requestId, file: f.path, fileIndex: i, fileCount: chosen.files.length, loaded, total: chosen.bytes });
    const bytes = await st.read(cacheKey(source.endpoint, source.repo, source.revision, f.path));
    loaded += bytes.length;
    map.set(f.path, bytes);
  }
  return { map, bytes: loaded };
}

/** Reads the model's files into a path → bytes map, reporting progress per file. */
async function readSource(requestId: number, source: ModelSource): Promise<{ map: Map<string, Uint8Array>; bytes: number }> {
  if (source.kind === 'hub') return readHub(requestId, source);
  const map = new Map<string, Uint8Array>();
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
    let bytes: Uint8Array;
    if (source.kind === 'url') {
      bytes = await fetchBytes(new URL(path, source.base).href, (n) => {
        loaded += n;
        report(path, i);
      });
    } else if (source.kind === 'local') {
      const file = source.files[i].file;
      try {
        bytes = new Uint8Array(await file.arrayBuffer());
      } catch (e) {
        throw new Error(`could not read ${path} from disk (${errorMessage(e)}): pick the folder again`);
      }
      loaded += bytes.length;
    } else {
      throw new Error('unreachable');
    }
    map.set(path, bytes);
  }
  report('', entries.length, true);
  return { map, bytes: total };
}

const same = (a: string[], b: string[]) => a.length === b.length && a.every((id, i) => id === b[i]);

/** Applies / reverts edits so that exactly `wanted` are active, in that order. */
async function syncEdits(s: Session, wanted: string[]) {
  if (same(s.activeEdits as string[], wanted)) return;
  s.revertAllEdits();
  for (const id of wanted) {
    const e = library.get(id);
    if (e?.kind === 'edit') await s.applyEdit(id, e.file, e.bytes);
  }
}

/** Attaches / detaches adapters so that exactly `wanted` are attached, in that order. */
function syncAdapters(s: Session, wanted: string[]) {
  if (same(s.activeAdapters as string[], wanted)) return;
  s.detachAllAdapters();
  for (const id of wanted) {
    const e = library.get(id);
    if (e?.kind === 'adapter') s.attachAdapter(id, e.file, e.bytes, e.adapterKind, e.scale);
  }
}

/** Makes the session match a run's variant; returns the run's steering (SLD and SAFREE entries combine; of two of a kind the last wins). */
async function syncVariant(s: Session, ids: string[]): Promise<SteeringRequest | undefined> {
  for (const id of ids) if (!library.has(id)) throw new Error(`variant entry ${id} is not loaded any more: add it again`);
  const of = (kind: Entry['kind']) => ids.filter((id) => library.get(id)!.kind === kind);
  await syncEdits(s, of('edit'));
  syncAdapters(s, of('adapter'));
  let steering: SteeringRequest | undefined;
  for (const id of of('steer')) steering = { ...steering, ...(library.get(id) as Extract<Entry, { kind: 'steer' }>).steering };
  return steering;
}

/** An adapter as the page lists it (the EditInfo shape, `kind` spm / lora). */
function adapterEntry(a: { id: string; kind: 'spm' | 'lora'; file: string; prompts: string[]; scale: number; rank: number; layers: number; modules: string[]; values: number }): EditInfo {
  return {
    id: a.id,
    file: a.file,
    method: a.kind,
    concepts: a.prompts,
    guides: [],
    preserve: [],
    hyperparameters: { scale: a.scale, rank: a.rank, layers: a.layers },
    tensors: a.modules,
    values: a.values,
    baseModel: '',
    warning: null,
    kind: a.kind,
  };
}

/** A file-name part from a concept: lower-case letters and digits joined by '-', at most 40 characters. */
function fileSlug(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'concept';
}

async function handle(msg: ToWorker) {
  switch (msg.type) {
    case 'init': {
      const t0 = performance.now();
      try {
        wasmReady ??= init();
        await wasmReady;
        session?.free();
        session = null;
        // Auto skips a software adapter (engine-choice.ts); an explicit WebGPU choice does not.
        const info = msg.backend === 'auto' ? await adapterInfo() : null;
        const skipped = isSoftwareAdapter(info) ? adapterName(info, 'unnamed') : null;
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
      let dropped = false;
      try {
        if (!session) throw new Error('the engine is not started yet');
        const { map, bytes } = await readSource(msg.requestId, msg.source);
        // The session drops the previous model's edits with it.
        library.clear();
        dropped = true;
        const info = JSON.parse(session.loadModel(map)) as ModelInfo;
        map.clear();
        const name = msg.source.name;
        const wasmBytes = (await wasmReady)?.memory.buffer.byteLength;
        post({ status: 'loaded', requestId: msg.requestId, name, info, bytes, ms: performance.now() - t0, wasmBytes });
      } catch (e) {
        // Until loadModel runs (files read, hub download), the previous model stays loaded.
        fail('load', msg.requestId, e, dropped || !session?.hasModel);
      }
      return;
    }
    case 'generate': {
      const { requestId, params } = msg;
      try {
        if (!session) throw new Error('the engine is not started yet');
        const s = session;
        const steering = await syncVariant(s, msg.edits);
        s.facilitatedTransport = msg.ft ?? true;
        const r = await s.generate(
          JSON.stringify({ ...params, ...(steering ? { steering } : {}) } satisfies GenerateParams),
          (p: { step: number; total: number; elapsedMs: number; stepMs: number; recordMs: number }) =>
            post({ status: 'progress', requestId, step: p.step, total: p.total, elapsedMs: p.elapsedMs, stepMs: p.stepMs, recordMs: p.recordMs }),
          (p: { step: number; width: number; height: number; rgba: Uint8ClampedArray }) =>
            post({ status: 'preview', requestId, step: p.step, width: p.width, height: p.height, rgba: p.rgba }, [p.rgba.buffer]),
        );
        if (r.status === 'cancelled') {
          post({ status: 'cancelled', requestId, step: r.step, total: r.total });
        } else {
          const rgba = r.rgba as Uint8ClampedArray;
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
            },
            [rgba.buffer],
          );
        }
      } catch (e) {
        fail('generate', requestId, e);
      }
      return;
    }
    case 'edit-add': {
      const t0 = performance.now();
      try {
        if (!session) throw new Error('the engine is not started yet');
        if (!session.hasModel) throw new Error('load a model before adding an edit');
        // Applied / attached now (this checks it against the model), then kept for toggling.
        const kind = Session.fileKind(msg.bytes);
        let edit: EditInfo;
        if (kind === 'eraser') {
          // Checked against the model's text width now; kept in the Session by id.
          edit = steererEntry(JSON.parse(session.loadEraser(msg.id, msg.file, msg.bytes)) as SteererInfo);
          library.set(msg.id, { kind: 'steer', steering: { eraser: msg.id } });
        } else if (kind === 'spm' || kind === 'lora') {
          edit = adapterEntry(JSON.parse(session.attachAdapter(msg.id, msg.file, msg.bytes, kind, 1)));
          library.set(msg.id, { kind: 'adapter', file: msg.file, bytes: msg.bytes, adapterKind: kind, scale: 1 });
        } else {
          edit = JSON.parse(await session.applyEdit(msg.id, msg.file, msg.bytes)) as EditInfo;
          library.set(msg.id, { kind: 'edit', file: msg.file, bytes: msg.bytes });
        }
        post({ status: 'edit', requestId: msg.requestId, edit, bytes: msg.bytes.slice(), ms: performance.now() - t0 });
      } catch (e) {
        fail('edit', msg.requestId, e);
      }
      return;
    }
    case 'edit-remove': {
      try {
        library.delete(msg.id);
        session?.removeSteering(msg.id);
        if (session?.hasModel && (session.activeEdits as string[]).includes(msg.id)) session.revertEdit(msg.id);
        if (session?.hasModel && (session.activeAdapters as string[]).includes(msg.id)) session.detachAdapter(msg.id);
        post({ status: 'edit-removed', requestId: msg.requestId, id: msg.id });
      } catch (e) {
        fail('edit', msg.requestId, e);
      }
      return;
    }
    case 'erase': {
      try {
        if (!session) throw new Error('the engine is not started yet');
        if (!session.hasModel) throw new Error('load a model before erasing a concept');
        const file = `${msg.method}-${fileSlug(msg.concepts.join('-'))}.safetensors`;
        const request = { method: msg.method, concepts: msg.concepts, guides: msg.guides, preserve: msg.preserve, params: msg.params };
        const r = JSON.parse(await session.erase(msg.id, file, JSON.stringify(request))) as { edit: EditInfo; ms: number };
        // Kept as a file, like an added one: toggling re-applies it, and the page can export it.
        const bytes = session.exportEdit(msg.id);
        library.set(msg.id, { kind: 'edit', file, bytes });
        post({ status: 'edit', requestId: msg.requestId, edit: r.edit, bytes: bytes.slice(), ms: r.ms, computed: true });
      } catch (e) {
        fail('erase', msg.requestId, e);
      }
      return;
    }
    case 'steer': {
      try {
        if (!session?.hasModel) throw new Error('load a model before adding steering');
        const st = msg.steering;
        library.set(msg.id, { kind: 'steer', steering: st });
        const safree = st.safree !== undefined;
        const concept = st.sldConcept?.trim() ? st.sldConcept.trim() : 'the official unsafe-concept list';
        const edit: EditInfo = {
          id: msg.id,
          file: safree ? `SAFREE ${st.safree}` : `SLD ${st.sld}`,
          method: safree ? 'safree' : 'sld',
          concepts: safree ? st.safree!.split(';') : [concept],
          guides: [],
          preserve: [],
          hyperparameters: safree
            ? { alpha: st.safreeAlpha ?? 0.01, allSteps: st.safreeAllSteps ?? false, artist: st.safreeArtist ?? false }
            : { preset: st.sld ?? '' },
          tensors: [],
          values: 0,
          baseModel: '',
          warning: null,
          kind: safree ? 'safree' : 'sld',
        };
        post({ status: 'edit', requestId: msg.requestId, edit, bytes: new Uint8Array(0), ms: 0, computed: true });
      } catch (e) {
        fail('erase', msg.requestId, e);
      }
      return;
    }
    case 'fit-eraser': {
      try {
        if (!session?.hasModel) throw new Error('load a model before fitting an eraser');
        const r = msg.request;
        const file = `${r.method}-${fileSlug(r.concepts[0])}.safetensors`;
        const out = JSON.parse(await session.fitEraser(msg.id, file, JSON.stringify(r))) as { eraser: SteererInfo; ms: number };
        library.set(msg.id, { kind: 'steer', steering: { eraser: msg.id } });
        // The eraser file, for export (`studio generate --leace FILE` reads it).
        const bytes = session.exportEraser(msg.id);
        post({ status: 'edit', requestId: msg.requestId, edit: steererEntry(out.eraser), bytes: bytes.slice(), ms: out.ms, computed: true });
      } catch (e) {
        fail('erase', msg.requestId, e);
      }
      return;
    }
    case 'ring-a-bell': {
      try {
        if (!session?.hasModel) throw new Error('load a model before adding a Ring-A-Bell probe');
        const out = JSON.parse(await session.fitRingABell(msg.id, JSON.stringify(msg.request))) as { probe: SteererInfo; ms: number };
        library.set(msg.id, { kind: 'steer', steering: { ringABell: msg.id } });
        post({ status: 'edit', requestId: msg.requestId, edit: steererEntry(out.probe), bytes: new Uint8Array(0), ms: out.ms, computed: true });
      } catch (e) {
        fail('erase', msg.requestId, e);
      }
      return;
    }
    case 'cancel':
      session?.cancel();
      return;
    case 'dispose':
      session?.dispose();
      library.clear();
      post({ status: 'disposed' });
      return;
  }
}

/** Requests run one after another; `cancel` must reach a running generation at once. */
let queue: Promise<void> = Promise.resolve();
scope.onmessage = (ev: MessageEvent<ToWorker>) => {
  const msg = ev.data;
  if (msg.type === 'cancel') {
    void handle(msg);
    return;
  }
  queue = queue.then(() => handle(msg)).catch(() => {});
};
