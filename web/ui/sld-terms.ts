// SLD's guidance terms per step (erasure::sld::SldStepTerms, what `studio generate --sld-terms`
// writes) as the "What it does" view shows them: a bar a step for ‖γ‖/‖ε_p − ε_u‖ — how much of
// the text's direction the safety term takes away — grey during the warm-up (γ builds up in the
// momentum but is not subtracted), and a line for the share of the latent where μ > 0.

import type { SldStepTerms } from '../protocol';
import { svg } from './svg';

export interface SldSummary {
  total: number;
  applied: number;
  /** The first step γ is subtracted at (0-based), null: none in this run. */
  firstApplied: number | null;
  /** Means over the steps γ is subtracted at (0 when none). */
  meanRelative: number;
  meanCoverage: number;
}

export function sldSummary(terms: readonly SldStepTerms[]): SldSummary {
  const on = terms.filter((t) => t.applied);
  const mean = (f: (t: SldStepTerms) => number) => (on.length ? on.reduce((a, t) => a + f(t), 0) / on.length : 0);
  return { total: terms.length, applied: on.length, firstApplied: on.length ? on[0].step : null, meanRelative: mean((t) => t.relative), meanCoverage: mean((t) => t.coverage) };
}

/** The chart: its bars carry `data-step`, `data-relative`, `data-coverage`, `data-applied`. */
export function sldTermsChart(terms: readonly SldStepTerms[]): SVGSVGElement {
  const W = 640;
  const H = 170;
  const left = 40;
  const right = 40;
  const base = H - 30;
  const top = Math.max(1e-9, ...terms.map((t) => t.relative));
  const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'anatomy-chart sld-chart', 'data-testid': 'guidance-terms', role: 'img' }) as SVGSVGElement;
  el.append(svg('title', {}, `SLD per step: ‖γ‖/‖ε_p − ε_u‖ (bars, largest ${top.toFixed(3)}) and the share of the latent with μ > 0 (line)`));
  el.append(svg('line', { x1: left - 4, x2: W - right + 4, y1: base, y2: base, class: 'axis' }));
  el.append(svg('text', { x: left - 8, y: 14, 'text-anchor': 'end', class: 'tick' }, top.toFixed(2)));
  el.append(svg('text', { x: left - 8, y: base, 'text-anchor': 'end', class: 'tick' }, '0'));
  el.append(svg('text', { x: W - right + 8, y: 14, class: 'tick' }, '100%'));
  el.append(svg('text', { x: W - right + 8, y: base, class: 'tick' }, '0%'));
  const slot = (W - left - right) / Math.max(1, terms.length);
  const bar = Math.max(1, Math.min(18, slot * 0.7));
  const points: string[] = [];
  terms.forEach((t, i) => {
    const x = left + i * slot + slot / 2;
    const h = ((base - 10) * t.relative) / top;
    const r = svg('rect', {
      x: x - bar / 2,
      y: base - h,
      width: bar,
      height: Math.max(0.5, h),
      class: t.applied ? 'bar-k' : 'bar-warm',
      'data-step': t.step,
      'data-relative': t.relative,
      'data-coverage': t.coverage,
      'data-applied': String(t.applied),
    });
    r.append(svg('title', {}, `step ${t.step}${t.applied ? '' : ' (warm-up: not subtracted)'}\n‖γ‖/‖ε_p − ε_u‖ = ${t.relative.toFixed(4)}\nμ > 0 on ${(100 * t.coverage).toFixed(1)} % of the latent, mean μ ${t.meanScale.toFixed(3)}\n‖ν‖ = ${t.momentumNorm.toFixed(4)}`));
    el.append(r);
    points.push(`${x.toFixed(1)},${(base - (base - 10) * t.coverage).toFixed(1)}`);
    if (terms.length <= 25 || i % Math.ceil(terms.length / 25) === 0) el.append(svg('text', { x, y: base + 13, 'text-anchor': 'middle', class: 'tick' }, String(t.step)));
  });
  el.append(svg('polyline', { points: points.join(' '), class: 'coverage' }));
  el.append(svg('rect', { x: left, y: H - 10, width: 10, height: 8, class: 'bar-k' }), svg('text', { x: left + 14, y: H - 2, class: 'tick' }, '‖γ‖/‖ε_p − ε_u‖, subtracted'));
  el.append(svg('rect', { x: left + 190, y: H - 10, width: 10, height: 8, class: 'bar-warm' }), svg('text', { x: left + 204, y: H - 2, class: 'tick' }, 'warm-up'));
  el.append(svg('line', { x1: left + 280, x2: left + 296, y1: H - 6, y2: H - 6, class: 'coverage' }), svg('text', { x: left + 300, y: H - 2, class: 'tick' }, 'μ > 0 (share of the latent)'));
  return el;
}
