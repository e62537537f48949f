// The sweep chart's numbers: a closed-form erasure computed at several values of one
// hyper-parameter, each scored on prompts of the concept and on neighbour prompts — by the
// classroom evaluator (`classroom::evaluator`, the CNN `studio eval-classroom` uses) where the
// model ships one, else by the pixels: how much of each image stayed as the original model drew
// it (any model, a real SD checkpoint included). Pure functions; web/ui/panels/sweep.ts runs the
// sweep in the page.

/** One value of the sweep and what the evaluator saw. */
export interface SweepPoint {
  value: number;
  /**
   * `evaluator`: `detected` is the fraction of the concept's images where the evaluator sees it;
   * `pixels`: the fraction of the concept's pixels left as the original drew them (both fall as the
   * erasure takes hold), and `kept` the same for the neighbours.
   */
  metric?: 'evaluator' | 'pixels';
  /** Fraction of the concept's images where the evaluator sees it (`skull = true`). */
  detected: number;
  /** Fraction of the neighbours' images whose shape, colour and background colour are the original image's. */
  kept: number;
}

/** The attributes a neighbour must keep (the evaluator's heads). */
export const KEPT_HEADS = ['shape', 'colour', 'bg_colour'] as const;

/** Parses `0, 0.25, 0.5, 1` (2 to 12 finite numbers, sorted). */
export function parseValues(text: string): { ok: true; values: number[] } | { ok: false; message: string } {
  const parts = text.split(/[,;\s]+/).filter((p) => p !== '');
  const values = parts.map(Number);
  const bad = parts.find((_, i) => !Number.isFinite(values[i]));
  if (bad !== undefined) return { ok: false, message: `“${bad}” is not a number: write the values as 0, 0.25, 0.5, 1` };
  if (values.length < 2 || values.length > 12) return { ok: false, message: `a sweep takes 2 to 12 values (got ${values.length})` };
  return { ok: true, values: [...new Set(values)].sort((a, b) => a - b) };
}

/** Whether the evaluator sees the concept in an image (the classroom's concept head is `skull`). */
export function sees(classes: Record<string, string>): boolean {
  return classes.skull === 'true';
}

/** Whether a neighbour's image kept what the original's image showed. */
export function keeps(classes: Record<string, string>, original: Record<string, string>): boolean {
  return KEPT_HEADS.every((h) => classes[h] === original[h]);
}

/** A sweep point from the evaluator's classes of the concept's and the neighbours' images (same order as `originals`). */
export function score(value: number, concept: Record<string, string>[], neighbours: Record<string, string>[], originals: Record<string, string>[]): SweepPoint {
  const detected = concept.length ? concept.filter(sees).length / concept.length : 0;
  const kept = neighbours.length ? neighbours.filter((c, i) => keeps(c, originals[i])).length / neighbours.length : 1;
  return { value, detected, kept, metric: 'evaluator' };
}

/** A pixel counts as changed when a channel moved by more than this (of 255). */
export const CHANGED = 32;

/** The fraction of pixels of RGB8 image `a` within `CHANGED` of `b` in every channel. */
export function unchangedFraction(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length) / 3;
  let same = 0;
  for (let i = 0; i < n; i++) {
    const j = i * 3;
    if (Math.abs(a[j] - b[j]) <= CHANGED && Math.abs(a[j + 1] - b[j + 1]) <= CHANGED && Math.abs(a[j + 2] - b[j + 2]) <= CHANGED) same++;
  }
  return n ? same / n : 1;
}

const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 1);

/** A sweep point from pixels alone: the edited images against the original's, prompt by prompt. */
export function scoreByPixels(value: number, concept: Uint8Array[], conceptOriginals: Uint8Array[], neighbours: Uint8Array[], neighbourOriginals: Uint8Array[]): SweepPoint {
  return {
    value,
    detected: mean(concept.map((c, i) => unchangedFraction(c, conceptOriginals[i]))),
    kept: mean(neighbours.map((c, i) => unchangedFraction(c, neighbourOriginals[i]))),
    metric: 'pixels',
  };
}

/** The chart's names of the two curves. */
export function seriesNames(metric: SweepPoint['metric']): { detected: string; kept: string } {
  return metric === 'pixels'
    ? { detected: 'concept images unchanged', kept: 'neighbours unchanged' }
    : { detected: 'concept detected', kept: 'neighbours kept' };
}

/** RGB8 of RGBA8 pixels (the evaluator's input). */
export function rgbOf(rgba: Uint8ClampedArray): Uint8Array {
  const out = new Uint8Array((rgba.length / 4) * 3);
  for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
    out[j] = rgba[i];
    out[j + 1] = rgba[i + 1];
    out[j + 2] = rgba[i + 2];
  }
  return out;
}
