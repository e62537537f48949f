import { describe, expect, it } from 'vitest';
import { keeps, parseValues, rgbOf, score, scoreByPixels, sees, seriesNames, unchangedFraction } from '../ui/sweep';

describe('sweep', () => {
  it('parses the values, sorted and unique, and refuses bad ones', () => {
    expect(parseValues('1, 0.25 0;0.25')).toEqual({ ok: true, values: [0, 0.25, 1] });
    expect(parseValues('0, lots')).toMatchObject({ ok: false, message: expect.stringContaining('lots') });
    expect(parseValues('1')).toMatchObject({ ok: false, message: expect.stringContaining('2 to 12') });
  });
  it('scores detection and neighbours kept against the original images', () => {
    const orig = [
      { shape: 'triangle', colour: 'red', bg_colour: 'blue', skull: 'false' },
      { shape: 'star', colour: 'yellow', bg_colour: 'green', skull: 'false' },
    ];
    expect(sees({ skull: 'true' })).toBe(true);
    expect(keeps({ ...orig[0], style: 'flat' }, orig[0])).toBe(true);
    expect(keeps({ ...orig[1], bg_colour: 'purple' }, orig[1])).toBe(false);
    const p = score(0.5, [{ skull: 'true' }, { skull: 'false' }, { skull: 'false' }, { skull: 'false' }], [orig[0], { ...orig[1], shape: 'moon' }], orig);
    expect(p).toEqual({ value: 0.5, detected: 0.25, kept: 0.5, metric: 'evaluator' });
  });
  it('drops the alpha channel', () => {
    expect(Array.from(rgbOf(new Uint8ClampedArray([1, 2, 3, 255, 4, 5, 6, 0])))).toEqual([1, 2, 3, 4, 5, 6]);
  });
});

describe('sweep by pixels (models without an evaluator)', () => {
  it('counts the pixels left as the original drew them', () => {
    const a = new Uint8Array([0, 0, 0, 100, 100, 100]);
    const b = new Uint8Array([32, 0, 0, 100, 200, 100]);
    expect(unchangedFraction(a, b)).toBe(0.5);
    const p = scoreByPixels(1, [a], [b], [a, a], [a, b]);
    expect(p).toEqual({ value: 1, detected: 0.5, kept: 0.75, metric: 'pixels' });
    expect(seriesNames('pixels').detected).toContain('unchanged');
    expect(seriesNames('evaluator').detected).toBe('concept detected');
  });
});
