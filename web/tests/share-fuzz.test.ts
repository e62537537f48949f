// Fuzzing the share-link decoder (issue 18, item 2): seeded mutations of valid links (cuts,
// byte garbage, broken percent-escapes, huge and hostile values, repeated keys) must never make
// fromHash throw, and whatever it returns must respect every field's type and bound — a link
// is outside input, so nothing it carries is trusted.
import { describe, expect, it } from 'vitest';
import { MAX_GUIDANCE, MAX_SEED, MAX_SIDE, MAX_STEPS } from '../generated/limits';
import { SCHEDULERS } from '../protocol';
import { fromHash, toHash, type Shared } from '../ui/share';

/** mulberry32: a small seeded PRNG, so a failure replays from its seed. */
function prng(seed: number) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const seeds: Shared[] = [
  { model: 'classroom', prompt: 'a red skull', seed: 42, steps: 25, guidance: 3, size: 64, scheduler: 'ddim', view: 'grid', gridPrompts: ['a', 'b'], edits: ['uce.safetensors'] },
  { prompt: 'x', eraseMethod: 'uce', concepts: 'skull', guides: '', preserve: 'cat', eraseParams: 'lamb=0.5', hubRepo: 'org/model' },
];
const hostile = ['%', '%E0%A4%A', '%00', '&&&', '=', 'NaN', 'Infinity', '-1', '1e309', '4294967296', '9'.repeat(400), '\u202e', '💀', '<script>', 'a'.repeat(30000), '\n\n\n'];
const keys = ['m', 'p', 'n', 'seed', 'steps', 'g', 'size', 'sch', 'prev', 'view', 'grid', 'em', 'ec', 'eg', 'ep', 'eo', 'eh', 'edits', 'repo', '__proto__', 'constructor'];

function mutate(s: string, r: () => number): string {
  const pick = <T>(xs: T[]) => xs[Math.floor(r() * xs.length)];
  let out = s;
  for (let n = 1 + Math.floor(r() * 4); n > 0; n--) {
    const i = Math.floor(r() * (out.length + 1));
    switch (Math.floor(r() * 6)) {
      case 0: out = out.slice(0, i); break;
      case 1: out = out.slice(0, i) + pick(hostile) + out.slice(i); break;
      case 2: out += `&${pick(keys)}=${encodeURIComponent(pick(hostile))}`; break;
      case 3: out += `&${pick(keys)}=${pick(hostile)}`; break;
      case 4: out = out.slice(0, i) + String.fromCharCode(Math.floor(r() * 0x10000)) + out.slice(i + 1); break;
      default: out = out.replace(/=[^&]*/, `=${pick(hostile)}`);
    }
  }
  return out;
}

function withinBounds(s: Shared) {
  const intIn = (v: unknown, lo: number, hi: number) => v === undefined || (Number.isInteger(v) && (v as number) >= lo && (v as number) <= hi);
  const strMax = (v: unknown, max: number) => v === undefined || (typeof v === 'string' && v.length <= max);
  expect(intIn(s.seed, 0, MAX_SEED) && intIn(s.steps, 1, MAX_STEPS) && intIn(s.size, 1, MAX_SIDE) && intIn(s.previewEvery, 0, MAX_STEPS)).toBe(true);
  expect(s.guidance === undefined || (Number.isFinite(s.guidance) && s.guidance >= 0 && s.guidance <= MAX_GUIDANCE)).toBe(true);
  expect(s.scheduler === undefined || (SCHEDULERS as readonly string[]).includes(s.scheduler)).toBe(true);
  expect(s.view === undefined || s.view === 'side' || s.view === 'grid').toBe(true);
  expect(strMax(s.model, 200) && strMax(s.hubRepo, 200) && strMax(s.eraseMethod, 20) && strMax(s.prompt, 2000)).toBe(true);
  for (const l of [s.gridPrompts, s.edits]) expect(l === undefined || (Array.isArray(l) && l.length <= 32 && l.every((x) => typeof x === 'string'))).toBe(true);
  // Only known keys come back (no prototype keys from the link).
  const known = new Set(['model', 'prompt', 'negativePrompt', 'seed', 'steps', 'guidance', 'size', 'scheduler', 'previewEvery', 'view', 'gridPrompts', 'eraseMethod', 'concepts', 'guides', 'preserve', 'others', 'eraseParams', 'edits', 'hubRepo']);
  for (const k of Object.keys(s)) expect(known.has(k)).toBe(true);
  expect(Object.getPrototypeOf(s)).toBe(Object.prototype);
}

describe('share links under fuzzing', () => {
  it('never throw and always stay within bounds (20,000 mutated links)', () => {
    const r = prng(0x5eed);
    let decoded = 0;
    for (let i = 0; i < 20000; i++) {
      const link = mutate(toHash(seeds[i % seeds.length]), r);
      let s: Shared;
      try {
        s = fromHash(link);
      } catch (e) {
        throw new Error(`fromHash threw on link #${i} ${JSON.stringify(link.slice(0, 200))}: ${e}`);
      }
      withinBounds(s);
      if (Object.keys(s).length > 0) decoded++;
    }
    // The mutations keep most links partly readable: the fuzzer reaches the field checks.
    expect(decoded).toBeGreaterThan(10000);
  }, 120_000);
});
