// The Content-Security-Policy, the hub hosts it allows, `?hub=` checking and what share links carry.

import { describe, expect, it } from 'vitest';
import { contentSecurityPolicy, DEFAULT_HUB_HOSTS, hubHosts, urlAllowed } from '../security-policy';
import { hubEndpointFrom, HUB_ENDPOINT } from '../hub/presets';
import { fromHash, PROMPT_FIELDS, shareable, shareSummary, toHash, type Shared } from '../ui/share';

describe('content security policy', () => {
  const csp = contentSecurityPolicy(DEFAULT_HUB_HOSTS);
  const directive = (p: string, name: string) => p.split('; ').find((d) => d.startsWith(`${name} `));
  it('allows scripts and wasm from self only, no inline script or eval', () => {
    expect(directive(csp, 'script-src')).toBe("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).not.toContain('unsafe-inline');
    expect(csp).not.toMatch(/'unsafe-eval'/);
    expect(directive(csp, 'default-src')).toBe("default-src 'none'");
  });
  it('connects to self and the hub hosts only', () => {
    expect(directive(csp, 'connect-src')).toBe("connect-src 'self' https://huggingface.co https://*.huggingface.co https://*.hf.co");
  });
  it('leaves out frame-ancestors in the <meta> form (a meta ignores it)', () => {
    expect(csp).toContain("frame-ancestors 'none'");
    expect(contentSecurityPolicy(DEFAULT_HUB_HOSTS, true)).not.toContain('frame-ancestors');
  });
  it('adds STUDIO_HUB_HOSTS and refuses what is not a host', () => {
    expect(hubHosts('https://mirror.example.org, https://*.cdn.example.org/')).toEqual([...DEFAULT_HUB_HOSTS, 'https://mirror.example.org', 'https://*.cdn.example.org']);
    expect(() => hubHosts("https://x.org 'unsafe-inline'")).toThrow(/STUDIO_HUB_HOSTS/);
    expect(() => hubHosts('https://x.org; script-src *')).toThrow(/not a host/);
    expect(() => hubHosts('*')).toThrow();
  });
  it('matches URLs like CSP host sources', () => {
    const page = 'http://127.0.0.1:4173';
    expect(urlAllowed('https://huggingface.co/api/models/x', DEFAULT_HUB_HOSTS, page)).toBe(true);
    expect(urlAllowed('https://cdn-lfs-us-1.hf.co/repos/a', DEFAULT_HUB_HOSTS, page)).toBe(true);
    expect(urlAllowed('https://cas-bridge.xethub.hf.co/x', DEFAULT_HUB_HOSTS, page)).toBe(true);
    expect(urlAllowed('http://127.0.0.1:4173/hub-mirror', DEFAULT_HUB_HOSTS, page)).toBe(true);
    expect(urlAllowed('https://huggingface.co.evil.org/', DEFAULT_HUB_HOSTS, page)).toBe(false);
    expect(urlAllowed('https://evilhf.co/', DEFAULT_HUB_HOSTS, page)).toBe(false);
    expect(urlAllowed('http://huggingface.co/', DEFAULT_HUB_HOSTS, page)).toBe(false);
    expect(urlAllowed('https://huggingface.co:8443/', DEFAULT_HUB_HOSTS, page)).toBe(false);
    expect(urlAllowed('not a url', DEFAULT_HUB_HOSTS, page)).toBe(false);
  });
});

describe('?hub=', () => {
  const page = 'http://127.0.0.1:4173/index.html';
  it('keeps the hub without one and takes a same-origin mirror', () => {
    expect(hubEndpointFrom(null, DEFAULT_HUB_HOSTS, page)).toEqual({ endpoint: HUB_ENDPOINT, refused: null });
    expect(hubEndpointFrom('http://127.0.0.1:4173/hub-mirror/', DEFAULT_HUB_HOSTS, page)).toEqual({ endpoint: 'http://127.0.0.1:4173/hub-mirror', refused: null });
  });
  it('refuses a host the policy does not allow, saying how to allow it', () => {
    const r = hubEndpointFrom('https://evil.example.com/hub', DEFAULT_HUB_HOSTS, page);
    expect(r.endpoint).toBe(HUB_ENDPOINT);
    expect(r.refused).toMatch(/https:\/\/evil\.example\.com is not a host this studio may contact.*STUDIO_HUB_HOSTS=https:\/\/evil\.example\.com/);
    expect(hubEndpointFrom('https://mirror.example.org', [...DEFAULT_HUB_HOSTS, 'https://mirror.example.org'], page).refused).toBeNull();
  });
});

describe('share links', () => {
  const full: Shared = {
    model: 'classroom', prompt: 'my secret prompt', negativePrompt: 'blurry', seed: 7, steps: 20, gridPrompts: ['a skull', 'a cat'],
    eraseMethod: 'uce', concepts: 'skull', guides: 'cat', preserve: 'star', others: 'a moon', eraseParams: 'lamb=0.5', edits: ['private-name.safetensors'],
  };
  it('leave out the prompts and concepts when unticked', () => {
    const link = toHash(shareable(full, { prompts: false, fileNames: true }));
    for (const text of ['my secret prompt', 'blurry', 'a skull', 'a cat', 'star', 'a moon', 'skull']) expect(decodeURIComponent(link.replace(/\+/g, ' '))).not.toContain(text);
    const back = fromHash(link);
    for (const k of PROMPT_FIELDS) expect(back[k]).toBeUndefined();
    expect(back).toMatchObject({ model: 'classroom', seed: 7, steps: 20, eraseMethod: 'uce', eraseParams: 'lamb=0.5', edits: ['private-name.safetensors'] });
  });
  it('leave out the file names when unticked, and say what they hold', () => {
    const s = shareable(full, { prompts: true, fileNames: false });
    expect(toHash(s)).not.toContain('private-name');
    expect(fromHash(toHash(s)).prompt).toBe('my secret prompt');
    expect(shareSummary(s)).toBe("it holds the settings, your prompts and concepts; never an image or a file's contents");
    expect(shareSummary(full)).toContain('1 edit file name');
    expect(shareSummary({ prompt: 'x' })).toContain('your prompt;');
    expect(shareSummary({ seed: 1 })).toBe("it holds the settings; never an image or a file's contents");
  });
});

describe('pinned preset hashes', () => {
  it('are SHA-256 hex of weight files, at a commit revision', async () => {
    const { HUB_PRESETS } = await import('../hub/presets');
    const pinnedPresets = HUB_PRESETS.filter((p) => p.pinned);
    expect(pinnedPresets.map((p) => p.repo)).toEqual(['stable-diffusion-v1-5/stable-diffusion-v1-5', 'stabilityai/sd-turbo']);
    for (const p of pinnedPresets) {
      expect(p.revision).toMatch(/^[0-9a-f]{40}$/);
      for (const [path, sha] of Object.entries(p.pinned!)) {
        expect(path).toMatch(/^(text_encoder|unet|vae)\/[a-z_]+(\.fp16)?\.safetensors$/);
        expect(sha).toMatch(/^[0-9a-f]{64}$/);
      }
    }
  });
});
