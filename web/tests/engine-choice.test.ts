import { describe, expect, it } from 'vitest';
import { adapterInfoLabel, adapterName, isSoftwareAdapter, softwareAdapterReason } from '../worker/engine-choice';

// What headless Chromium's SwiftShader adapter reports (GPUAdapterInfo, Chromium 156).
const swiftshader = { vendor: 'google', architecture: 'swiftshader', device: '', description: '', isFallbackAdapter: true };
const nvidia = { vendor: 'nvidia', architecture: 'hopper', device: '', description: '', isFallbackAdapter: false };

describe('engine choice', () => {
  it('knows a software adapter', () => {
    expect(isSoftwareAdapter(swiftshader)).toBe(true);
    expect(isSoftwareAdapter(nvidia)).toBe(false);
    expect(isSoftwareAdapter({ vendor: 'mesa', type: 'CPU' })).toBe(true);
    expect(isSoftwareAdapter({ vendor: 'amd', type: 'discrete GPU' })).toBe(false);
    expect(isSoftwareAdapter({})).toBe(false);
    expect(isSoftwareAdapter(null)).toBe(false);
  });
  it('labels adapters', () => {
    expect(adapterInfoLabel(swiftshader, 'BrowserWebGpu')).toBe('google swiftshader (software)');
    expect(adapterInfoLabel(nvidia, 'BrowserWebGpu')).toBe('nvidia hopper');
    expect(adapterInfoLabel(null, 'BrowserWebGpu')).toBe('BrowserWebGpu');
    expect(adapterName({ isFallbackAdapter: true }, 'unnamed')).toBe('unnamed');
  });
  it('says why Auto runs on the CPU', () => {
    const r = softwareAdapterReason('google swiftshader');
    expect(r).toMatch(/software one \(google swiftshader, no GPU\)/);
    expect(r).toMatch(/slower than the CPU path/);
    expect(r).toMatch(/Set Device to WebGPU/);
  });
});
