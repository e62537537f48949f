// The page's side of the worker (web/worker/worker.ts): starts and restarts it, numbers the
// requests, and hands each answer back to whoever asked, as the Promise `request` returned.
//
// One rule keeps a late message from painting over a newer request's work (the only request-id
// guard of the page): a request made supersedes every earlier one still unanswered. A superseded
// request's progress is dropped and its answer resolves to `null` ("the page has moved on");
// its error still resolves as the error, because the page reports every failure. A restart
// resolves every unanswered request to `null`.

import { isFromWorker, type BackendChoice, type FromWorker, type ToWorker } from '../protocol';

/** `stats` is asked for beside the running request and supersedes nothing (`EngineClient.stats`). */
type WithId = Exclude<Extract<ToWorker, { requestId: number }>, { type: 'stats' }>;
type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;
/** A request as the page writes it; the client adds the `requestId`. */
export type EngineRequest = DistributiveOmit<WithId, 'requestId'>;

type Msg<S extends FromWorker['status']> = Extract<FromWorker, { status: S }>;
export type ErrorMsg = Msg<'error'>;
export type ReadyMsg = Msg<'ready'>;
export type ImageMsg = Msg<'image'>;
export type PreviewMsg = Msg<'preview'>;
export type EntryMsg = Msg<'entry'>;
export type LoadedMsg = Msg<'loaded'>;
export type StatsMsg = Msg<'stats'>;

/** The messages that report a request's progress before its answer. */
export type Streamed = Msg<'download' | 'loading' | 'progress' | 'preview'>;

/** What each request is answered with (besides an `error`). */
interface Answers {
  load: LoadedMsg;
  generate: ImageMsg | Msg<'cancelled'>;
  'entry-add': EntryMsg;
  'entry-compute': EntryMsg;
  'entry-remove': Msg<'entry-removed'>;
  'entry-export': Msg<'exported'>;
  'entry-anatomy': Msg<'anatomy'>;
  evaluate: Msg<'evaluation'>;
  digest: Msg<'digest'>;
}
export type Answer<T extends EngineRequest['type']> = Answers[T] | ErrorMsg;

const STREAMED = new Set<string>(['download', 'loading', 'progress', 'preview']);

/** What the engine says without being asked. */
export type EngineEvent =
  | { kind: 'starting' }
  | { kind: 'ready'; msg: ReadyMsg }
  /** The worker script itself failed (it never answers). */
  | { kind: 'crashed'; message: string }
  /** An error no request is waiting for (the engine's start). */
  | { kind: 'error'; msg: ErrorMsg }
  /** The GPU device went away: the engine must be replaced (web/ui/recovery.ts). */
  | { kind: 'device-lost'; msg: Msg<'device-lost'> };

interface Pending {
  resolve(m: FromWorker | null): void;
  onStream?: (m: Streamed) => void;
}

export class EngineClient {
  /** The last messages without pixels, for tests and for looking at per-step timings in devtools. */
  readonly log: FromWorker[] = [];
  private worker: Worker | null = null;
  private lastId = 0;
  private pending = new Map<number, Pending>();
  /** `stats` requests, numbered apart so that asking for them supersedes no request. */
  private lastStatsId = 0;
  private statsPending = new Map<number, (m: StatsMsg | null) => void>();
  private listeners: ((e: EngineEvent) => void)[] = [];

  on(fn: (e: EngineEvent) => void): void {
    this.listeners.push(fn);
  }

  /** Replaces the worker (if any) with a fresh one on `backend`. */
  start(backend: BackendChoice, tasksMax: number | undefined, gpuLimits?: 'default', gpuBudget?: number): void {
    this.worker?.terminate();
    for (const p of this.pending.values()) p.resolve(null);
    this.pending.clear();
    for (const resolve of this.statsPending.values()) resolve(null);
    this.statsPending.clear();
    this.emit({ kind: 'starting' });
    const w = new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'studio-engine' });
    w.onmessage = (ev: MessageEvent<unknown>) => this.receive(ev.data);
    w.onerror = (ev: ErrorEvent) => {
      ev.preventDefault();
      this.emit({ kind: 'crashed', message: ev.message || 'the worker script failed to load' });
    };
    this.worker = w;
    this.post({ type: 'init', backend, tasksMax, ...(gpuLimits ? { gpuLimits } : {}), ...(gpuBudget ? { gpuBudget } : {}) });
  }

  /**
   * Sends `msg` with a fresh request id; resolves with its answer or error, or `null` if it was
   * superseded. `onStream` gets its progress messages while it is the latest request.
   */
  request<T extends EngineRequest>(msg: T, onStream?: (m: Streamed) => void, transfer: Transferable[] = []): Promise<Answer<T['type']> | null> {
    const requestId = ++this.lastId;
    return new Promise((resolve) => {
      this.pending.set(requestId, { resolve: resolve as Pending['resolve'], onStream });
      this.post({ ...msg, requestId } as ToWorker, transfer);
    });
  }

  /**
   * The engine's memory now (wasm memory, live GPU buffers), answered at once even while a job
   * runs; `null` when the engine was restarted before it answered.
   */
  stats(): Promise<StatsMsg | null> {
    const requestId = ++this.lastStatsId;
    return new Promise((resolve) => {
      if (!this.worker) return resolve(null);
      this.statsPending.set(requestId, resolve);
      this.post({ type: 'stats', requestId });
    });
  }

  /** Test hook: destroys the engine's GPU device (the device-loss test). */
  loseDevice(): void {
    this.post({ type: 'lose-device' });
  }

  /** Stops the running generation after its current step (it answers `cancelled`). */
  cancel(): void {
    this.post({ type: 'cancel' });
  }

  private post(msg: ToWorker, transfer: Transferable[] = []) {
    this.worker?.postMessage(msg, transfer);
  }

  private emit(e: EngineEvent) {
    for (const fn of this.listeners) fn(e);
  }

  private receive(data: unknown) {
    if (!isFromWorker(data)) {
      console.warn('unexpected message from the worker', data);
      return;
    }
    const m = data;
    // Not logged: a test asks for these after every run.
    if (m.status === 'stats') {
      this.statsPending.get(m.requestId)?.(m);
      this.statsPending.delete(m.requestId);
      return;
    }
    if (m.status !== 'image' && m.status !== 'preview' && m.status !== 'exported') this.log.push(m);
    if (this.log.length > 2000) this.log.splice(0, 1000);
    if (m.status === 'ready') return this.emit({ kind: 'ready', msg: m });
    if (m.status === 'device-lost') return this.emit({ kind: 'device-lost', msg: m });
    const id = m.requestId;
    const p = id === null ? undefined : this.pending.get(id);
    if (!p) {
      if (m.status === 'error') this.emit({ kind: 'error', msg: m });
      return;
    }
    const latest = id === this.lastId;
    if (STREAMED.has(m.status)) {
      if (latest) p.onStream?.(m as Streamed);
      return;
    }
    this.pending.delete(id!);
    p.resolve(latest || m.status === 'error' ? m : null);
  }
}
