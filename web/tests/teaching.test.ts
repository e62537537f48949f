import { describe, expect, it } from 'vitest';
import { heatColour, wordHeat } from '../ui/heat';
import type { AttentionMaps } from '../protocol';

function maps(rows: number[][], words: { text: string; rows: number[] }[]): AttentionMaps {
  return { tokens: rows.map((_, i) => `t${i}`), words, height: 1, width: rows[0].length, layers: 1, heads: 1, steps: 1, stepWindow: [0, 0], runSteps: 1, resolutions: [], scores: words.map((w) => ({ word: w.text, iou: null })), ms: 0, maps: new Float32Array(rows.flat()) };
}

describe('wordHeat', () => {
  it('averages a word over its tokens and normalises to [0, 1]', () => {
    const m = maps([[9, 9, 9], [0, 2, 4], [2, 2, 8]], [{ text: 'sk', rows: [1, 2] }]);
    // mean of rows 1 and 2: [1, 2, 6] → (x − 1) / 5
    const h = Array.from(wordHeat(m, 0));
    expect(h.map((v) => +v.toFixed(6))).toEqual([0, 0.2, 1]);
  });
  it('a flat map is all zeros, not NaN', () => {
    const h = wordHeat(maps([[3, 3]], [{ text: 'a', rows: [0] }]), 0);
    expect(Array.from(h)).toEqual([0, 0]);
  });
});

describe('heatColour', () => {
  it('runs dark blue → red → yellow and clamps', () => {
    expect(heatColour(0)).toEqual([0, 0, 153]);
    expect(heatColour(0.5)).toEqual([255, 0, 0]);
    expect(heatColour(1)).toEqual([255, 255, 0]);
    expect(heatColour(7)).toEqual([255, 255, 0]);
  });
});
