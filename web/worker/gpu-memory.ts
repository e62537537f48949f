// GPU buffer accounting of this worker: how many WebGPU buffers are alive and how many bytes
// they hold, so the soak test (tests/browser/soak.mjs) can assert that long use does not leak
// GPU memory. wgpu (inside wasm) creates every buffer through `GPUDevice.prototype.createBuffer`;
// a buffer is released by `GPUBuffer.prototype.destroy`, by its device's `destroy`, or, dropped
// without either, when the garbage collector reclaims it (a FinalizationRegistry sees that). The
// three are wrapped or watched here, installed before the module asks for a device.
//
// burn / cubecl keep a memory pool: freed tensors go back to the pool, not to the GPU, so live
// bytes rise to a plateau (the pool's size for the model and image size in use) rather than
// return to zero after a run. A leak is growth past that plateau.
//
// Chain-safe: each wrapper calls the function it replaced (read at install time), so another
// wrapper installed before or after this one (gpu-device.ts wraps `requestDevice`, and may wrap
// `createBuffer` too) still runs. A buffer counts once however many times it is destroyed, and
// `GPUDevice.destroy()` releases the buffers of that device still alive (WebGPU destroys them).
// Nothing here holds a buffer: the books are WeakMaps.

import type { GpuMemoryStats } from '../protocol';

interface Totals {
  buffers: number;
  bytes: number;
}

/** One buffer: its size, its device's totals, and whether it was released already. */
interface BufferRecord {
  size: number;
  device: Totals;
  released: boolean;
}

/** A buffer's record (a buffer destroyed twice finds itself released). */
const records = new WeakMap<object, BufferRecord>();
/** Per device: its live buffers (a destroyed device releases them all). */
const perDevice = new WeakMap<object, Totals>();
/** Totals of destroyed devices: their buffers were released with them. */
const destroyedDevices = new WeakSet<Totals>();
const stats: GpuMemoryStats = { liveBuffers: 0, liveBytes: 0, peakBytes: 0, created: 0, destroyed: 0, collected: 0 };
/** Counts a buffer collected without `destroy()` as released. */
const collector = typeof FinalizationRegistry === 'function' ? new FinalizationRegistry<BufferRecord>((r) => release(r, 'collected')) : null;
let installed = false;

type Fn = (this: object, ...args: unknown[]) => unknown;
interface Proto {
  prototype: Record<string, Fn>;
}

function release(r: BufferRecord, how: 'destroyed' | 'collected') {
  if (r.released) return;
  r.released = true;
  if (destroyedDevices.has(r.device)) return;
  r.device.buffers -= 1;
  r.device.bytes -= r.size;
  stats.liveBuffers -= 1;
  stats.liveBytes -= r.size;
  stats[how] += 1;
}

/** Wraps the WebGPU functions that create and destroy buffers (idempotent; a no-op without WebGPU). */
export function installGpuAccounting(): void {
  const g = globalThis as unknown as { GPUDevice?: Proto; GPUBuffer?: Proto };
  if (installed || !g.GPUDevice || !g.GPUBuffer) return;
  installed = true;
  const device = g.GPUDevice.prototype;
  const buffer = g.GPUBuffer.prototype;
  const createBuffer = device.createBuffer;
  const destroyDevice = device.destroy;
  const destroyBuffer = buffer.destroy;

  device.createBuffer = function (this: object, ...args: unknown[]) {
    const buf = createBuffer.apply(this, args) as { size?: number } | null;
    let totals = perDevice.get(this);
    if (!totals) perDevice.set(this, (totals = { buffers: 0, bytes: 0 }));
    // A buffer of a destroyed device holds no memory.
    if (buf && typeof buf === 'object' && !records.has(buf) && !destroyedDevices.has(totals)) {
      // `size` is the buffer's own attribute; the descriptor's is the fallback.
      const size = Number(buf.size ?? (args[0] as { size?: number } | undefined)?.size ?? 0) || 0;
      const r: BufferRecord = { size, device: totals, released: false };
      records.set(buf, r);
      collector?.register(buf, r, r);
      totals.buffers += 1;
      totals.bytes += size;
      stats.created += 1;
      stats.liveBuffers += 1;
      stats.liveBytes += size;
      stats.peakBytes = Math.max(stats.peakBytes, stats.liveBytes);
    }
    return buf;
  };

  buffer.destroy = function (this: object, ...args: unknown[]) {
    const r = records.get(this);
    if (r) {
      release(r, 'destroyed');
      collector?.unregister(r);
    }
    return destroyBuffer.apply(this, args);
  };

  device.destroy = function (this: object, ...args: unknown[]) {
    const totals = perDevice.get(this);
    if (totals && !destroyedDevices.has(totals)) {
      // The device's buffers go with it; they are not reachable from here one by one, so its
      // totals are released at once, and a buffer of it released later counts nothing more.
      stats.liveBuffers -= totals.buffers;
      stats.liveBytes -= totals.bytes;
      stats.destroyed += totals.buffers;
      totals.buffers = 0;
      totals.bytes = 0;
      destroyedDevices.add(totals);
    }
    return destroyDevice.apply(this, args);
  };
}

/** The counts now (a copy); null where this worker has no WebGPU (nothing was installed). */
export function gpuMemoryStats(): GpuMemoryStats | null {
  return installed ? { ...stats } : null;
}
