// The WebGPU device the wasm module asks for, watched from this worker: wgpu (inside wasm)
// creates it through `GPUAdapter.prototype.requestDevice`, which is wrapped here before the
// module starts. What it gives the worker:
//  - `lost`: the device's `lost` promise, so a lost GPU (driver reset, a tab that lost its GPU,
//    `destroy()`) ends the running job with a message and the page restarts the engine on a new
//    device (web/ui/recovery.ts) instead of a job that never answers;
//  - the last error the device reported (an out-of-memory or validation error reaches wgpu's
//    uncaptured-error handler, which panics: the worker then explains it with the numbers);
//  - the device's limits (what a too-large buffer is compared with);
//  - the size of the last buffer asked for, so an out-of-memory message says how much was asked;
//  - test hooks: `destroyGpuDevice()` (the device-loss test), `defaultLimits` (a device with
//    WebGPU's default limits, 128 MiB a storage buffer, as the smallest conforming GPU has) and
//    `budgetBytes` (`?gpuBudget=`: a stand-in for a GPU with that much memory — a buffer that
//    would take the live buffers past it raises a GPUOutOfMemoryError the way a full GPU does,
//    as an uncaptured error after the call).

export interface GpuErrorRecord {
  kind: 'out-of-memory' | 'validation' | 'internal' | 'unknown';
  message: string;
  /** The last buffer asked for before the error, bytes, and what the live buffers held then. */
  askedBytes?: number;
  heldBytes?: number | null;
}

export interface GpuLimitsInfo {
  maxBufferSize: number;
  maxStorageBufferBindingSize: number;
}

interface GpuDeviceLike extends EventTarget {
  lost: Promise<{ reason: string; message: string }>;
  limits: GpuLimitsInfo;
  destroy(): void;
}

interface WatchOptions {
  onLost(info: { reason: string; message: string }): void;
  /** The device reported an error no scope caught (after `lastGpuError` has it). */
  onError?(e: GpuErrorRecord): void;
}

let device: GpuDeviceLike | null = null;
let lastError: GpuErrorRecord | null = null;
let installed = false;
/** Set before the engine starts: request WebGPU's default limits instead of the adapter's. */
export const gpuDeviceOptions: {
  defaultLimits: boolean;
  /** > 0: the stand-in GPU memory (`?gpuBudget=`), bytes. */
  budgetBytes: number;
  /** Bytes held by live buffers now (gpu-memory.ts), null when unknown. */
  heldBytes: () => number | null;
} = { defaultLimits: false, budgetBytes: 0, heldBytes: () => null };
/** The last `createBuffer` call: its size and what the live buffers held before it. */
let lastAsk: { bytes: number; heldBytes: number | null } | null = null;

function errorKind(e: unknown): GpuErrorRecord['kind'] {
  const name = (e as { constructor?: { name?: string } })?.constructor?.name ?? '';
  if (name === 'GPUOutOfMemoryError') return 'out-of-memory';
  if (name === 'GPUValidationError') return 'validation';
  if (name === 'GPUInternalError') return 'internal';
  return 'unknown';
}

/** Wraps `requestDevice` (idempotent; a no-op without WebGPU). */
export function watchGpuDevice(opts: WatchOptions): void {
  const Adapter = (globalThis as unknown as { GPUAdapter?: { prototype: { requestDevice(d?: unknown): Promise<GpuDeviceLike> } } }).GPUAdapter;
  if (installed || !Adapter) return;
  installed = true;
  watchBufferRequests();
  const original = Adapter.prototype.requestDevice;
  Adapter.prototype.requestDevice = async function (this: unknown, descriptor?: { requiredLimits?: Record<string, number> }) {
    const d = descriptor && gpuDeviceOptions.defaultLimits ? { ...descriptor, requiredLimits: {} } : descriptor;
    const dev = await original.call(this, d);
    device = dev;
    lastError = null;
    // Listening does not replace wgpu's own `onuncapturederror` handler; both are called.
    dev.addEventListener('uncapturederror', (ev) => {
      const error = (ev as unknown as { error: { message: string; asked?: { bytes: number; heldBytes: number | null } } }).error;
      if (lastError) return;
      // The stand-in's error carries the call it answers; a real one is after the call that failed.
      const ask = error.asked ?? lastAsk;
      lastError = { kind: errorKind(error), message: error.message, ...(ask ? { askedBytes: ask.bytes, heldBytes: ask.heldBytes } : {}) };
      opts.onError?.(lastError);
    });
    void dev.lost.then((info) => {
      if (device === dev) opts.onLost({ reason: info.reason, message: info.message });
    });
    return dev;
  };
}

/**
 * Wraps `GPUDevice.prototype.createBuffer` (chain-safe: it calls the function it replaced) to
 * remember the last size asked for, and to play a full GPU under `budgetBytes`.
 */
function watchBufferRequests(): void {
  type Create = (this: GpuDeviceLike, d: { size?: number }) => unknown;
  const Device = (globalThis as unknown as { GPUDevice?: { prototype: { createBuffer: Create } } }).GPUDevice;
  if (!Device) return;
  const create = Device.prototype.createBuffer;
  let overBudget = false;
  Device.prototype.createBuffer = function (this: GpuDeviceLike, d: { size?: number }) {
    const bytes = Number(d?.size ?? 0) || 0;
    const held = gpuDeviceOptions.heldBytes();
    lastAsk = { bytes, heldBytes: held };
    const buffer = create.call(this, d);
    const budget = gpuDeviceOptions.budgetBytes;
    if (budget > 0 && held !== null && held + bytes > budget && !overBudget) {
      overBudget = true;
      const G = globalThis as unknown as {
        GPUOutOfMemoryError?: new (m: string) => object;
        GPUUncapturedErrorEvent?: new (t: string, i: { error: object }) => Event;
      };
      if (G.GPUOutOfMemoryError && G.GPUUncapturedErrorEvent) {
        const error = Object.assign(new G.GPUOutOfMemoryError(`the stand-in GPU of ?gpuBudget= has ${budget} bytes`), { asked: { bytes, heldBytes: held } });
        const event = new G.GPUUncapturedErrorEvent('uncapturederror', { error });
        // Like a real one: reported after the call, from the event loop.
        setTimeout(() => this.dispatchEvent(event), 0);
      }
    }
    return buffer;
  };
}

/** The stand-in GPU's memory of `?gpuBudget=`, bytes (0: none). */
export function gpuBudget(): number {
  return gpuDeviceOptions.budgetBytes;
}

/** Destroys the engine's device (the device-loss test); false when there is none (the CPU path). */
export function destroyGpuDevice(): boolean {
  if (!device) return false;
  device.destroy();
  return true;
}

/** The first error the device reported since it was created (or since `clearGpuError`). */
export function lastGpuError(): GpuErrorRecord | null {
  return lastError;
}

export function gpuLimits(): GpuLimitsInfo | null {
  return device ? { maxBufferSize: device.limits.maxBufferSize, maxStorageBufferBindingSize: device.limits.maxStorageBufferBindingSize } : null;
}
