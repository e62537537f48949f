import { describe, expect, it } from 'vitest';
import { frame, frameCount, stepDifferences } from '../ui/panels/timeline';
import type { Result } from '../ui/store';

function result(frames: number[][]): Result {
  const px = (v: number) => [v, v, v, 255];
  const flat = frames.flatMap((f) => f.flatMap(px));
  return { width: 2, height: 1, rgba: new Uint8ClampedArray(8), params: {} as Result['params'], edits: [], requestId: 0, timeline: new Uint8ClampedArray(flat) };
}

describe('timeline frames', () => {
  it('splits the frames and measures the difference per step', () => {
    const a = result([[0, 0], [10, 10], [20, 20]]);
    const b = result([[0, 0], [10, 30], [20, 60]]);
    expect(frameCount(a)).toBe(3);
    expect(Array.from(frame(a, 1) ?? [])).toEqual([10, 10, 10, 255, 10, 10, 10, 255]);
    expect(frame(a, 3)).toBeNull();
    expect(stepDifferences(a, b)).toEqual([0, 10, 20]);
  });
  it('no timeline, no frames', () => {
    expect(frameCount(null)).toBe(0);
    expect(frameCount({ ...result([[1, 1]]), timeline: null })).toBe(0);
  });
});
