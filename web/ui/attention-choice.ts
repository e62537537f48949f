// The attention view's choice of steps and layer resolutions (pipeline::daam::Selection): what
// the inputs say, checked with a message, and what a run of some number of steps sends. Pure, so
// that the rules are tested without a page.

import type { AttentionResolution, AttentionSelection } from '../protocol';

export type Choice = { ok: true; selection: AttentionSelection | null } | { ok: false; message: string };

/**
 * The view's inputs → the selection: steps `first`–`last` (0-based, inclusive) of a run of `steps`
 * steps and the factors ticked. The whole run and every resolution is `null` (the default maps).
 */
export function readChoice(first: string, last: string, ticked: number[], available: AttentionResolution[], steps: number): Choice {
  const a = Number(first);
  const b = Number(last);
  if (first.trim() === '' || last.trim() === '' || !Number.isInteger(a) || !Number.isInteger(b)) {
    return { ok: false, message: `Give the steps as two whole numbers between 0 and ${steps - 1}.` };
  }
  if (a < 0 || b > steps - 1) return { ok: false, message: `This run has ${steps} steps, numbered 0 to ${steps - 1}: choose steps in that range (got ${a}–${b}).` };
  if (a > b) return { ok: false, message: `The first step (${a}) comes after the last (${b}).` };
  if (!ticked.length) return { ok: false, message: 'Tick at least one resolution: the maps average the layers ticked.' };
  const whole = a === 0 && b === steps - 1;
  const every = available.every((r) => ticked.includes(r.factor));
  if (whole && every) return { ok: true, selection: null };
  return { ok: true, selection: { steps: whole ? null : [a, b], factors: every ? null : [...ticked].sort((x, y) => x - y) } };
}

/**
 * What a run of `steps` steps sends: the window cut to the run (a run with fewer steps than the
 * window keeps the part it has; a window wholly past its end starts at its last step), nothing for
 * the default.
 */
export function selectionFor(selection: AttentionSelection | null, steps: number): AttentionSelection | undefined {
  if (!selection) return undefined;
  const out: AttentionSelection = {};
  if (selection.steps) {
    const last = Math.max(0, steps - 1);
    const b = Math.min(selection.steps[1], last);
    out.steps = [Math.min(selection.steps[0], b), b];
  }
  if (selection.factors) out.factors = [...selection.factors];
  return out.steps || out.factors ? out : undefined;
}

/** "steps 0–19 of 20, layers at 8×8 + 4×4": what the maps were made of, for the view's note. */
export function describeChoice(stepWindow: [number, number], steps: number, resolutions: AttentionResolution[]): string {
  const [a, b] = stepWindow;
  const used = resolutions.filter((r) => r.selected);
  const sizes = used.map((r) => `${r.width}×${r.height}`).join(' + ');
  const stepsText = a === 0 && b === steps - 1 ? `all ${steps} steps` : `steps ${a}–${b} of ${steps}`;
  const layers = used.length === resolutions.length ? `every resolution (${sizes})` : `the layers at ${sizes} only`;
  return `${stepsText}, ${layers}`;
}
