import { describe, expect, it } from 'vitest';
import { addTextChunks, crc32, readTextChunks } from '../ui/png';
import { fromHash, toHash, type Shared } from '../ui/share';
import { defaultGridPrompts, diffHeatmap, gridVariants } from '../ui/compare';
import { parametersText, parseParams, splitList, formatSpeed } from '../ui/logic';

/** A 1×1 RGBA PNG (IHDR, one stored-deflate IDAT, IEND) with correct CRCs. */
function tinyPng(): Uint8Array {
  const chunk = (type: string, data: number[]) => {
    const body = new Uint8Array([...type].map((c) => c.charCodeAt(0)).concat(data));
    const len = data.length;
    const crc = ~crc32(body) >>> 0;
    return [len >>> 24, (len >>> 16) & 255, (len >>> 8) & 255, len & 255, ...body, crc >>> 24, (crc >>> 16) & 255, (crc >>> 8) & 255, crc & 255];
  };
  const ihdr = [0, 0, 0, 1, 0, 0, 0, 1, 8, 6, 0, 0, 0];
  const idat = [0x78, 0x01, 0x01, 0x05, 0x00, 0xfa, 0xff, 0x00, 255, 0, 0, 255, 0x05, 0xfe, 0x01, 0xfe];
  return new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10, ...chunk('IHDR', ihdr), ...chunk('IDAT', idat), ...chunk('IEND', [])]);
}

describe('PNG text chunks', () => {
  it('computes the standard CRC-32', () => {
    expect(crc32(new TextEncoder().encode('123456789')) ^ 0xffffffff).toBe(0xcbf43926 | 0);
  });

  it('adds tEXt (and iTXt for non-Latin-1) chunks before IEND and reads them back', () => {
    const png = tinyPng();
    const out = addTextChunks(png, [
      ['prompt', 'a big red star'],
      ['seed', '42'],
      ['negative_prompt', 'blurry, café'],
      ['edits', '[{"file":"uce-skull.safetensors","method":"uce"}]'],
      ['model', 'Classroom model 🎓'],
    ]);
    expect(readTextChunks(out)).toEqual({
      prompt: 'a big red star',
      seed: '42',
      negative_prompt: 'blurry, café',
      edits: '[{"file":"uce-skull.safetensors","method":"uce"}]',
      model: 'Classroom model 🎓',
    });
    // The image itself is untouched: same IHDR/IDAT prefix, IEND last.
    const iend = png.length - 12;
    expect(out.subarray(0, iend)).toEqual(png.subarray(0, iend));
    expect(String.fromCharCode(...out.subarray(out.length - 8, out.length - 4))).toBe('IEND');
    const latin = new TextDecoder('latin1').decode(out);
    expect(latin).toContain('tEXtprompt\0a big red star');
    expect(latin).toContain('tEXtnegative_prompt\0blurry, caf\u00e9');
    expect(latin).toContain('iTXtmodel');
  });

  it('refuses what is not a PNG and detects a damaged chunk', () => {
    expect(() => addTextChunks(new Uint8Array([1, 2, 3]), [])).toThrow(/not a PNG/);
    const out = addTextChunks(tinyPng(), [['seed', '42']]);
    const bad = out.slice();
    bad[bad.length - 16] ^= 1; // inside the tEXt data
    expect(() => readTextChunks(bad)).toThrow(/bad CRC/);
    expect(() => addTextChunks(tinyPng(), [['', 'x']])).toThrow(/keyword/);
  });
});

describe('share URL', () => {
  const all: Shared = {
    model: 'tiny-sd1',
    prompt: 'a skull & crossbones #1?',
    negativePrompt: 'blurry',
    seed: 4294967295,
    steps: 8,
    guidance: 3,
    size: 64,
    scheduler: 'euler-a',
    previewEvery: 2,
    view: 'grid',
    gridPrompts: ['a skull', 'a red circle'],
    eraseMethod: 'uce',
    concepts: 'skull; pirate flag',
    guides: '',
    preserve: 'red circle',
    others: 'a star; a photo of a star',
    eraseParams: 'lamb=0.5, tokens=legacy',
    edits: ['uce-skull.safetensors'],
    hubRepo: 'CompVis/stable-diffusion-v1-4',
  };

  it('round-trips every setting', () => {
    const { guides: _g, ...expected } = all; // empty strings are left out
    expect(fromHash(toHash(all))).toEqual(expected);
    expect(toHash(all)).not.toMatch(/[ &?]{1}skull/);
  });

  it('drops malformed or out-of-range values instead of trusting them', () => {
    const h = '#seed=-3&steps=9999&g=NaN&sch=pndm&size=x&view=cube&prev=2.5&p=ok';
    expect(fromHash(h)).toEqual({ prompt: 'ok' });
    expect(fromHash('')).toEqual({});
    expect(fromHash('#g=0')).toEqual({ guidance: 0 });
  });
});

describe('compare', () => {
  it('maps |Δ| to a heat-map and measures it', () => {
    const a = new Uint8ClampedArray([0, 0, 0, 255, 100, 100, 100, 255, 10, 20, 30, 255, 0, 0, 0, 255]);
    const b = new Uint8ClampedArray([0, 0, 0, 255, 100, 100, 100, 255, 10, 20, 30, 255, 255, 255, 255, 255]);
    const d = diffHeatmap(a, b, 2, 2, 128);
    expect(d.max).toBe(255);
    expect(d.mean).toBeCloseTo(255 / 4, 6);
    expect(d.changed).toBe(0.25);
    expect(Array.from(d.rgba.subarray(0, 4))).toEqual([0, 0, 0, 255]);
    expect(Array.from(d.rgba.subarray(12, 16))).toEqual([255, 255, 255, 255]);
    const half = diffHeatmap(new Uint8ClampedArray([0, 0, 0, 255]), new Uint8ClampedArray([64, 64, 64, 255]), 1, 1, 128);
    expect(Array.from(half.rgba)).toEqual([255, 128, 0, 255]);
    // By default white is the largest difference (at least 16).
    const auto = diffHeatmap(new Uint8ClampedArray([0, 0, 0, 255, 0, 0, 0, 255]), new Uint8ClampedArray([20, 20, 20, 255, 10, 10, 10, 255]), 2, 1);
    expect(auto.scale).toBe(20);
    expect(Array.from(auto.rgba)).toEqual([255, 255, 255, 255, 255, 128, 0, 255]);
    expect(diffHeatmap(new Uint8ClampedArray([0, 0, 0, 255]), new Uint8ClampedArray([4, 4, 4, 255]), 1, 1).scale).toBe(16);
    expect(() => diffHeatmap(a, b.subarray(4), 2, 2)).toThrow(/different sizes/);
  });

  it('lays out grid variants and default prompts', () => {
    expect(gridVariants([])).toEqual([{ label: 'Original', edits: [] }]);
    expect(gridVariants([{ id: 'e1', label: 'UCE: skull' }, { id: 'e2', label: 'file' }]).map((v) => v.edits)).toEqual([[], ['e1'], ['e2'], ['e1', 'e2']]);
    expect(defaultGridPrompts('classroom', [])).toEqual(['a skull', 'the pirate-flag symbol', 'a red circle', 'a blue star on a striped background']);
    expect(defaultGridPrompts('classroom', ['skull'])[0]).toBe('a skull');
    expect(defaultGridPrompts('hub:x/y', ['Van Gogh'])[0]).toBe('a Van Gogh');
  });

  it('splits concept lists and writes the A1111 parameters line', () => {
    expect(splitList(' skull ; pirate flag;; ')).toEqual(['skull', 'pirate flag']);
    expect(splitList('a, b')).toEqual(['a', 'b']);
    expect(parametersText({ prompt: 'a skull', negativePrompt: 'blurry', steps: 20, scheduler: 'ddim', guidance: 7.5, seed: 42, width: 64, height: 64 }, 'Classroom model')).toBe(
      'a skull\nNegative prompt: blurry\nSteps: 20, Sampler: ddim, CFG scale: 7.5, Seed: 42, Size: 64x64, Model: Classroom model',
    );
    expect(formatSpeed(2_500_000)).toBe('2.5 MB/s');
    expect(parseParams('lamb=0.5, erase_scale=1e-1; augment=true\ntokens = legacy')).toEqual({
      ok: true,
      params: { lamb: 0.5, erase_scale: 0.1, augment: true, tokens: 'legacy' },
    });
    expect(parseParams('')).toEqual({ ok: true, params: {} });
    expect(parseParams('lamb')).toMatchObject({ ok: false, message: expect.stringMatching(/name=value/) });
    expect(formatSpeed(0)).toBe('–');
  });
});
