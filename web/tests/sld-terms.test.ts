import { describe, expect, it } from 'vitest';
import { sldSummary } from '../ui/sld-terms';
import type { SldStepTerms } from '../protocol';

const t = (step: number, applied: boolean, relative: number, coverage: number): SldStepTerms => ({ step, applied, relative, gammaNorm: relative, guidanceNorm: 1, coverage, meanScale: coverage / 2, momentumNorm: 0.1 });

describe('sldSummary', () => {
  it('averages over the steps γ is subtracted at', () => {
    const s = sldSummary([t(0, false, 9, 1), t(1, false, 9, 1), t(2, true, 0.2, 0.5), t(3, true, 0.4, 0.1)]);
    expect(s).toEqual({ total: 4, applied: 2, firstApplied: 2, meanRelative: expect.closeTo(0.3, 12), meanCoverage: expect.closeTo(0.3, 12) });
  });
  it('a run shorter than the warm-up subtracts nothing', () => {
    expect(sldSummary([t(0, false, 1, 1)])).toEqual({ total: 1, applied: 0, firstApplied: null, meanRelative: 0, meanCoverage: 0 });
  });
});
