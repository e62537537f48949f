import { describe, expect, it } from 'vitest';
import { describeChoice, readChoice, selectionFor } from '../ui/attention-choice';
import type { AttentionResolution } from '../protocol';

const res = (factor: number, side: number, selected = true): AttentionResolution => ({ factor, height: side, width: side, layers: 2, heads: 4, selected });
const ALL = [res(1, 8), res(2, 4), res(4, 2)];

describe('readChoice', () => {
  it('the whole run and every resolution is the default', () => {
    expect(readChoice('0', '19', [1, 2, 4], ALL, 20)).toEqual({ ok: true, selection: null });
  });
  it('keeps a window and the factors ticked, sorted', () => {
    expect(readChoice('3', '9', [4, 2], ALL, 20)).toEqual({ ok: true, selection: { steps: [3, 9], factors: [2, 4] } });
    expect(readChoice('0', '19', [1], ALL, 20)).toEqual({ ok: true, selection: { steps: null, factors: [1] } });
    expect(readChoice('5', '5', [1, 2, 4], ALL, 20)).toEqual({ ok: true, selection: { steps: [5, 5], factors: null } });
  });
  it('refuses what the run does not have, saying what to choose', () => {
    const bad = (f: string, l: string, t: number[]) => {
      const c = readChoice(f, l, t, ALL, 20);
      return c.ok ? '' : c.message;
    };
    expect(bad('0', '20', [1])).toContain('numbered 0 to 19');
    expect(bad('-1', '3', [1])).toContain('numbered 0 to 19');
    expect(bad('7', '3', [1])).toContain('comes after the last');
    expect(bad('1.5', '3', [1])).toContain('whole numbers');
    expect(bad('', '3', [1])).toContain('whole numbers');
    expect(bad('0', '3', [])).toContain('at least one resolution');
  });
});

describe('selectionFor', () => {
  it('sends nothing for the default', () => {
    expect(selectionFor(null, 20)).toBeUndefined();
    expect(selectionFor({ steps: null, factors: null }, 20)).toBeUndefined();
  });
  it('cuts the window to a shorter run', () => {
    expect(selectionFor({ steps: [3, 9], factors: null }, 20)).toEqual({ steps: [3, 9] });
    expect(selectionFor({ steps: [3, 9], factors: null }, 6)).toEqual({ steps: [3, 5] });
    expect(selectionFor({ steps: [12, 15], factors: [2] }, 6)).toEqual({ steps: [5, 5], factors: [2] });
  });
});

describe('describeChoice', () => {
  it('says which steps and layers the maps hold', () => {
    expect(describeChoice([0, 19], 20, ALL)).toBe('all 20 steps, every resolution (8×8 + 4×4 + 2×2)');
    expect(describeChoice([2, 4], 20, [res(1, 8, false), res(2, 4), res(4, 2, false)])).toBe('steps 2–4 of 20, the layers at 4×4 only');
  });
});
