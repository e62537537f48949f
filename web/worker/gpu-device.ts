// The WebGPU device the wasm module asks for, watched from this worker: wgpu (inside wasm)
// creates it through `GPUAdapter.prototype.requestDevice`, which is wrapped here before the
// module starts. What it gives the worker:
//  - `lost`: the device's `lost` promise, so a lost GPU (driver reset, a tab that lost its GPU,
//    `destroy()`) ends the running job with a message and the page restarts the engine on a new
//    device (web/ui/recovery.ts) instead of a job that never answers;
//  - the last error the device reported (an out-of-memory or validation error reaches wgpu's
//    uncaptured-error handler, which panics: the worker then explains it with the numbers);
//  - the device's limits (what a too-large buffer is compared with);
//  - test hooks: `destroyGpuDevice()` (the device-loss test) and `defaultLimits` (a device with
//    WebGPU's default limits, 128 MiB a storage buffer, as the smallest conforming GPU has).

export interface GpuErrorRecord {
  kind: 'out-of-memory' | 'validation' | 'internal' | 'unknown';
  message: string;
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
}

let device: GpuDeviceLike | null = null;
let lastError: GpuErrorRecord | null = null;
let installed = false;
/** Set before the engine starts: request WebGPU's default limits instead of the adapter's. */
export const gpuDeviceOptions = { defaultLimits: false };

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
  const original = Adapter.prototype.requestDevice;
  Adapter.prototype.requestDevice = async function (this: unknown, descriptor?: { requiredLimits?: Record<string, number> }) {
    const d = descriptor && gpuDeviceOptions.defaultLimits ? { ...descriptor, requiredLimits: {} } : descriptor;
    const dev = await original.call(this, d);
    device = dev;
    lastError = null;
    // Listening does not replace wgpu's own `onuncapturederror` handler; both are called.
    dev.addEventListener('uncapturederror', (ev) => {
      const error = (ev as unknown as { error: { message: string } }).error;
      lastError ??= { kind: errorKind(error), message: error.message };
    });
    void dev.lost.then((info) => {
      if (device === dev) opts.onLost({ reason: info.reason, message: info.message });
    });
    return dev;
  };
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
