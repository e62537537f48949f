import { beforeAll, describe, expect, it } from 'vitest';

/** Stand-ins for WebGPU's classes: what the wrappers see of them. */
class GPUBuffer {
  destroyedTimes = 0;
  constructor(readonly size: number) {}
  destroy() {
    this.destroyedTimes++;
  }
}
class GPUDevice {
  destroyed = false;
  createBuffer(d: { size: number }) {
    return new GPUBuffer(d.size);
  }
  destroy() {
    this.destroyed = true;
  }
}

describe('gpu-memory', () => {
  let mod: typeof import('../worker/gpu-memory');
  /** A wrapper installed before the accounting (gpu-device.ts may add one): it must still run. */
  let earlierCalls = 0;
  beforeAll(async () => {
    const g = globalThis as Record<string, unknown>;
    g.GPUBuffer = GPUBuffer;
    g.GPUDevice = GPUDevice;
    const plain = GPUDevice.prototype.createBuffer;
    GPUDevice.prototype.createBuffer = function (this: GPUDevice, d: { size: number }) {
      earlierCalls++;
      return plain.call(this, d);
    };
    mod = await import('../worker/gpu-memory');
    mod.installGpuAccounting();
    mod.installGpuAccounting();
  });

  it('counts live buffers and bytes, a buffer destroyed twice once, and keeps the peak', () => {
    const dev = new GPUDevice();
    const a = dev.createBuffer({ size: 1000 });
    const b = dev.createBuffer({ size: 24 });
    expect(earlierCalls).toBe(2);
    expect(mod.gpuMemoryStats()).toEqual({ liveBuffers: 2, liveBytes: 1024, peakBytes: 1024, created: 2, destroyed: 0, collected: 0 });
    a.destroy();
    a.destroy();
    expect(a.destroyedTimes).toBe(2);
    expect(mod.gpuMemoryStats()).toEqual({ liveBuffers: 1, liveBytes: 24, peakBytes: 1024, created: 2, destroyed: 1, collected: 0 });
    b.destroy();
    expect(mod.gpuMemoryStats()).toMatchObject({ liveBuffers: 0, liveBytes: 0, peakBytes: 1024 });
  });

  it('releases the buffers of a destroyed device, and counts none of them again', () => {
    const before = mod.gpuMemoryStats()!;
    const dev = new GPUDevice();
    const bufs = [dev.createBuffer({ size: 64 }), dev.createBuffer({ size: 64 })];
    bufs[0].destroy();
    dev.destroy();
    expect(dev.destroyed).toBe(true);
    bufs[0].destroy();
    bufs[1].destroy();
    dev.createBuffer({ size: 4096 });
    expect(mod.gpuMemoryStats()).toMatchObject({ liveBuffers: before.liveBuffers, liveBytes: before.liveBytes, created: before.created + 2, destroyed: before.destroyed + 2 });
  });
});
