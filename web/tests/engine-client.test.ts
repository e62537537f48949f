import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import type { FromWorker, ToWorker } from '../protocol';
import { EngineClient, type EngineEvent, type Streamed } from '../ui/engine-client';

/** A stand-in for the engine worker: records what the page posts, answers when told. */
class FakeWorker {
  static all: FakeWorker[] = [];
  posted: ToWorker[] = [];
  terminated = false;
  onmessage: ((ev: { data: unknown }) => void) | null = null;
  onerror: ((ev: unknown) => void) | null = null;
  constructor() {
    FakeWorker.all.push(this);
  }
  postMessage(m: ToWorker) {
    this.posted.push(m);
  }
  terminate() {
    this.terminated = true;
  }
  say(m: FromWorker) {
    this.onmessage?.({ data: m });
  }
}

const info = { defaultWidth: 16, defaultHeight: 16, sizeMultiple: 8, latentChannels: 4, textWidth: 32, textLayers: 2, unetChannels: [32], schedulerClass: null, defaultScheduler: 'ddim', predictionType: null };
const loaded = (requestId: number): FromWorker => ({ status: 'loaded', requestId, name: 'tiny', info, bytes: 1, ms: 1 });
const loading = (requestId: number): FromWorker => ({ status: 'loading', requestId, file: 'unet', fileIndex: 0, fileCount: 1, loaded: 1, total: 2 });
const error = (requestId: number | null, phase: 'init' | 'load' = 'load'): FromWorker => ({ status: 'error', requestId, phase, message: 'no', fatal: false });
const source = { kind: 'url' as const, id: 'tiny', name: 'tiny', base: 'http://x/', files: [] };

describe('EngineClient', () => {
  beforeEach(() => {
    FakeWorker.all = [];
    vi.stubGlobal('Worker', FakeWorker);
  });
  afterEach(() => vi.unstubAllGlobals());

  function started() {
    const engine = new EngineClient();
    const events: EngineEvent[] = [];
    engine.on((e) => events.push(e));
    engine.start('cpu', undefined);
    return { engine, events, worker: FakeWorker.all.at(-1)! };
  }

  it('starts the worker with init and reports ready', () => {
    const { events, worker } = started();
    expect(worker.posted).toEqual([{ type: 'init', backend: 'cpu', tasksMax: undefined }]);
    worker.say({ status: 'ready', backend: 'cpu', adapter: 'cpu', fallbackReason: null, maxStorageBuffer: null, shaderF16: false, precision: 'f32', initMs: 1 });
    expect(events.map((e) => e.kind)).toEqual(['starting', 'ready']);
  });

  it('numbers requests and resolves each with its answer, streaming its progress', async () => {
    const { engine, worker } = started();
    const seen: Streamed[] = [];
    const answer = engine.request({ type: 'load', source }, (m) => seen.push(m));
    expect(worker.posted[1]).toMatchObject({ type: 'load', requestId: 1 });
    worker.say(loading(1));
    worker.say(loaded(1));
    expect(await answer).toMatchObject({ status: 'loaded', requestId: 1 });
    expect(seen.map((m) => m.status)).toEqual(['loading']);
  });

  it('drops a superseded request: its progress is not shown and its answer resolves to null', async () => {
    const { engine, worker } = started();
    const seen: Streamed[] = [];
    const first = engine.request({ type: 'load', source }, (m) => seen.push(m));
    const second = engine.request({ type: 'entry-remove', id: 'e1' });
    worker.say(loading(1));
    worker.say(loaded(1));
    worker.say({ status: 'entry-removed', requestId: 2, id: 'e1', removed: true });
    expect(await first).toBeNull();
    expect(await second).toMatchObject({ status: 'entry-removed' });
    expect(seen).toEqual([]);
  });

  it('still reports the error of a superseded request', async () => {
    const { engine, worker } = started();
    const first = engine.request({ type: 'load', source });
    void engine.request({ type: 'entry-remove', id: 'e1' });
    worker.say(error(1));
    expect(await first).toMatchObject({ status: 'error', requestId: 1 });
  });

  it('hands an error nobody waits for (the start) to the listeners', () => {
    const { events, worker } = started();
    worker.say(error(null, 'init'));
    expect(events.at(-1)).toMatchObject({ kind: 'error', msg: { phase: 'init' } });
  });

  it('resolves every unanswered request to null on a restart', async () => {
    const { engine, worker } = started();
    const pending = engine.request({ type: 'load', source });
    engine.start('auto', 2);
    expect(worker.terminated).toBe(true);
    expect(await pending).toBeNull();
    expect(FakeWorker.all.at(-1)!.posted).toEqual([{ type: 'init', backend: 'auto', tasksMax: 2 }]);
  });

  it('answers stats beside the running request, superseding nothing, and leaves them out of the log', async () => {
    const { engine, worker } = started();
    const load = engine.request({ type: 'load', source });
    const stats = engine.stats();
    expect(worker.posted.at(-1)).toEqual({ type: 'stats', requestId: 1 });
    worker.say({ status: 'stats', requestId: 1, wasmBytes: 65536, gpu: null });
    worker.say(loaded(1));
    expect(await stats).toMatchObject({ status: 'stats', wasmBytes: 65536 });
    expect(await load).toMatchObject({ status: 'loaded', requestId: 1 });
    expect(engine.log.map((m) => m.status)).toEqual(['loaded']);
    const unanswered = engine.stats();
    engine.start('cpu', undefined);
    expect(await unanswered).toBeNull();
  });

  it('keeps the messages without pixels in its log and ignores malformed ones', () => {
    const { engine, worker } = started();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    worker.onmessage?.({ data: { status: 'loaded' } });
    worker.say(loading(7));
    expect(warn).toHaveBeenCalledOnce();
    expect(engine.log.map((m) => m.status)).toEqual(['loading']);
  });
});
