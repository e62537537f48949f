import { describe, expect, it } from 'vitest';
import { SCHEDULERS, errorMessage, isFromWorker } from '../protocol';

const image = (w: number, h: number, n = w * h * 4) => ({
  status: 'image',
  requestId: 3,
  width: w,
  height: h,
  rgba: new Uint8ClampedArray(n),
  timing: { startMs: 1, stepsMs: 2, perStepMs: 1, decodeMs: 1, totalMs: 4 },
  params: { prompt: 'x', negativePrompt: '', steps: 2, guidance: 7.5, width: w, height: h, seed: 1, scheduler: 'ddim' },
  promptTruncated: false,
  backend: 'webgpu',
  edits: [],
});

describe('isFromWorker', () => {
  it('accepts every well-formed message', () => {
    const ok = [
      { status: 'ready', backend: 'webgpu', adapter: 'SwiftShader', fallbackReason: null, maxStorageBuffer: 2 ** 30, shaderF16: false, precision: 'f32', initMs: 3 },
      { status: 'ready', backend: 'webgpu', adapter: 'nvidia', fallbackReason: null, maxStorageBuffer: 2 ** 31, shaderF16: true, precision: 'f16', initMs: 3 },
      { status: 'ready', backend: 'cpu', adapter: 'CPU', fallbackReason: 'no WebGPU', maxStorageBuffer: null, shaderF16: false, precision: 'f32', initMs: 3 },
      { status: 'ready', backend: 'cpu', adapter: 'CPU', fallbackReason: 'software', skippedAdapter: 'google swiftshader', maxStorageBuffer: null, shaderF16: false, precision: 'f32', initMs: 3 },
      { status: 'loading', requestId: 1, file: 'unet/config.json', fileIndex: 0, fileCount: 9, loaded: 10, total: 100 },
      { status: 'loaded', requestId: 1, name: 'tiny', info: { defaultWidth: 16, defaultHeight: 16, sizeMultiple: 2 }, bytes: 9, ms: 1 },
      { status: 'progress', requestId: 2, step: 3, total: 20, elapsedMs: 10, stepMs: 3 },
      image(16, 16),
      { status: 'cancelled', requestId: 2, step: 1, total: 20 },
      { status: 'error', requestId: null, phase: 'init', message: 'boom', fatal: false },
      { status: 'error', requestId: 4, phase: 'erase', message: 'UCE is not available yet', fatal: false },
      { status: 'preview', requestId: 2, step: 5, width: 2, height: 2, rgba: new Uint8ClampedArray(16) },
      { status: 'entry', requestId: 5, entry: { id: 'e1', kind: 'edit', tensors: ['a.weight'] }, ms: 3, computed: false },
      { status: 'entry-removed', requestId: 6, id: 'e1', removed: true },
      { status: 'exported', requestId: 6, id: 'e1', file: 'uce-skull.safetensors', data: new Blob([new Uint8Array(8)]) },
      { status: 'download', requestId: 7, repo: 'CompVis/stable-diffusion-v1-4', files: [], offline: false },
      { status: 'stats', requestId: 8, wasmBytes: 65536, gpu: { liveBuffers: 3, liveBytes: 4096, peakBytes: 8192, created: 9, destroyed: 4, collected: 2 } },
      { status: 'stats', requestId: 8, wasmBytes: 65536, gpu: null },
    ];
    for (const m of ok) expect(isFromWorker(m), JSON.stringify(m.status)).toBe(true);
  });

  it('rejects malformed messages', () => {
    const bad: unknown[] = [
      null,
      'image',
      { status: 'nope' },
      { status: 'ready', backend: 'metal', adapter: 'x', fallbackReason: null },
      { status: 'ready', backend: 'webgpu', adapter: 'x', fallbackReason: null, precision: 'f64' },
      { status: 'ready', backend: 'cpu', adapter: 'x', fallbackReason: 'software', skippedAdapter: 1, precision: 'f32' },
      { status: 'progress', requestId: 2, step: 21, total: 20 },
      { status: 'progress', requestId: 2, step: Number.NaN, total: 20 },
      image(16, 16, 16 * 16 * 3),
      { ...image(4, 4), rgba: new Uint8Array(64) },
      { status: 'error', requestId: 1, phase: 'train', message: 'x', fatal: false },
      { status: 'entry', requestId: 1, entry: { id: 'e1', tensors: [] }, ms: 1 },
      { status: 'exported', requestId: 1, id: 'e1', file: 'x', data: [1, 2] },
      { status: 'disposed' },
      { status: 'preview', requestId: 1, step: 2, width: 2, height: 2, rgba: new Uint8ClampedArray(3) },
      { status: 'error', requestId: 1, phase: 'load', message: 'x' },
      { status: 'stats', requestId: 8, gpu: null },
      { status: 'stats', requestId: 8, wasmBytes: 65536, gpu: { liveBuffers: 3, liveBytes: 4096 } },
    ];
    for (const m of bad) expect(isFromWorker(m), JSON.stringify(m)).toBe(false);
  });
});

describe('errorMessage', () => {
  it('reads errors, strings and other values', () => {
    expect(errorMessage(new Error('the model folder has no `vae`'))).toBe('the model folder has no `vae`');
    expect(errorMessage('plain')).toBe('plain');
    expect(errorMessage({ a: 1 })).toBe('{"a":1}');
  });
});

describe('SCHEDULERS', () => {
  it('uses the CLI names of the Rust schedulers', () => {
    expect([...SCHEDULERS]).toEqual(['ddim', 'euler', 'euler-a', 'lcm', 'dpm']);
  });
});
