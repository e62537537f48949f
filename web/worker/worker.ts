// The web worker owns the wasm module, the Session and the GPU. It answers `ToWorker` messages
// with `FromWorker` messages (web/protocol.ts). One request runs at a time; `cancel` is handled
// between two denoising steps because the Session yields to this event loop after each step.

import init, { createSession, type Session } from '../pkg/studio_wasm.js';
import { errorMessage, type FromWorker, type GenerateParams, type ModelInfo, type ModelSource, type Phase, type ToWorker } from '../protocol';

/** The dedicated worker's global scope (typed by hand: the DOM and WebWorker libs cannot be mixed). */
const scope = globalThis as unknown as {
  postMessage(message: FromWorker, transfer: Transferable[]): void;
  onmessage: ((ev: MessageEvent<ToWorker>) => void) | null;
};

let wasmReady: Promise<unknown> | null = null;
let session: Session | null = null;

function post(msg: FromWorker, transfer: Transferable[] = []) {
  scope.postMessage(msg, transfer);
}

function fail(phase: Phase, requestId: number | null, e: unknown) {
  // A trap (Rust panic, out-of-bounds) leaves the module in an unknown state: the UI replaces the worker.
  const fatal = e instanceof WebAssembly.RuntimeError;
  let message = errorMessage(e);
  if (fatal) message = `The studio engine crashed (${message}). It restarts on its own; reload the model and try again.`;
  post({ status: 'error', requestId, phase, message, fatal });
}

/** A readable adapter name: browsers leave wgpu's `name` empty and expose vendor/architecture instead. */
async function adapterLabel(fallback: string): Promise<string> {
  try {
    const gpu = (navigator as unknown as { gpu?: { requestAdapter(): Promise<{ info?: Record<string, unknown> } | null> } }).gpu;
    const info = (await gpu?.requestAdapter())?.info;
    if (!info) return fallback;
    const words = [info.vendor, info.architecture, info.description].filter((w): w is string => typeof w === 'string' && w !== '');
    const label = words.length ? words.join(' ') : fallback;
    return info.isFallbackAdapter ? `${label} (software)` : label;
  } catch {
    return fallback;
  }
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

/** Reads the model's files into a path → bytes map, reporting progress per file. */
async function readSource(requestId: number, source: ModelSource): Promise<{ map: Map<string, Uint8Array>; bytes: number }> {
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
    } else {
      const file = source.files[i].file;
      try {
        bytes = new Uint8Array(await file.arrayBuffer());
      } catch (e) {
        throw new Error(`could not read ${path} from disk (${errorMessage(e)}): pick the folder again`);
      }
      loaded += bytes.length;
    }
    map.set(path, bytes);
  }
  report('', entries.length, true);
  return { map, bytes: total };
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
        session = await createSession(msg.backend, msg.tasksMax);
        post({
          status: 'ready',
          backend: session.backend as 'webgpu' | 'cpu',
          adapter: session.backend === 'webgpu' ? await adapterLabel(session.adapter) : session.adapter,
          fallbackReason: session.fallbackReason ?? null,
          maxStorageBuffer: session.maxStorageBuffer ?? null,
          shaderF16: session.shaderF16,
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
        if (!session) throw new Error('the engine is not started yet');
        const { map, bytes } = await readSource(msg.requestId, msg.source);
        const info = JSON.parse(session.loadModel(map)) as ModelInfo;
        map.clear();
        const name = msg.source.name;
        post({ status: 'loaded', requestId: msg.requestId, name, info, bytes, ms: performance.now() - t0 });
      } catch (e) {
        fail('load', msg.requestId, e);
      }
      return;
    }
    case 'generate': {
      const { requestId, params } = msg;
      try {
        if (!session) throw new Error('the engine is not started yet');
        const s = session;
        const r = await s.generate(JSON.stringify(params satisfies GenerateParams), (p: { step: number; total: number; elapsedMs: number; stepMs: number; recordMs: number }) =>
          post({ status: 'progress', requestId, step: p.step, total: p.total, elapsedMs: p.elapsedMs, stepMs: p.stepMs, recordMs: p.recordMs }),
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
              backend: s.backend as 'webgpu' | 'cpu',
            },
            [rgba.buffer],
          );
        }
      } catch (e) {
        fail('generate', requestId, e);
      }
      return;
    }
    case 'cancel':
      session?.cancel();
      return;
    case 'dispose':
      session?.dispose();
      post({ status: 'disposed' });
      return;
  }
}

scope.onmessage = (ev: MessageEvent<ToWorker>) => {
  void handle(ev.data);
};
