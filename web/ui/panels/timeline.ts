// The denoising timeline: the scheduler's predicted clean image x̂₀ after every step (decoded by
// the engine, `engine.rs` `timeline`), for the original and the edited image in step, with their
// difference at that step and a curve of the difference over the steps: where along the
// trajectory the erased concept leaves the edited image.

import type { Ctx } from '../context';
import type { PageState, Result } from '../store';
import { diffHeatmap } from '../compare';
import { byId } from '../dom';

/** Frame `k` (0-based) of a result's timeline. */
export function frame(r: Result, k: number): Uint8ClampedArray | null {
  const n = r.width * r.height * 4;
  if (!r.timeline || (k + 1) * n > r.timeline.length) return null;
  return r.timeline.subarray(k * n, (k + 1) * n);
}

export function frameCount(r: Result | null): number {
  return r?.timeline ? Math.floor(r.timeline.length / (r.width * r.height * 4)) : 0;
}

/** Mean |Δ| (0–255) between the original's and the edited timeline at every step. */
export function stepDifferences(a: Result, b: Result): number[] {
  const n = Math.min(frameCount(a), frameCount(b));
  const out: number[] = [];
  for (let k = 0; k < n; k++) {
    const fa = frame(a, k);
    const fb = frame(b, k);
    if (fa && fb && a.width === b.width && a.height === b.height) out.push(diffHeatmap(fa, fb, a.width, a.height).mean);
  }
  return out;
}

export function createTimelinePanel(ctx: Pick<Ctx, 'store'>) {
  const { store } = ctx;
  const el = {
    section: byId('timeline'),
    note: byId('timeline-note'),
    scrubber: byId<HTMLInputElement>('timeline-scrubber'),
    step: byId('timeline-step'),
    panes: byId('timeline-panes'),
    chart: document.getElementById('timeline-chart') as unknown as SVGSVGElement,
  };
  let shown: { original: Result | null; edited: Result | null; step: number } = { original: null, edited: null, step: 0 };

  function canvasOf(rgba: Uint8ClampedArray, w: number, h: number, kind: string, step: number): HTMLCanvasElement {
    const c = document.createElement('canvas');
    c.width = w;
    c.height = h;
    c.getContext('2d')?.putImageData(new ImageData(new Uint8ClampedArray(rgba), w, h), 0, 0);
    c.classList.toggle('pixelated', w < 256);
    c.setAttribute('data-testid', 'timeline-frame');
    c.dataset.variant = kind;
    c.dataset.step = String(step);
    return c;
  }

  function pane(label: string, cls: string, c: HTMLCanvasElement): HTMLElement {
    const fig = document.createElement('figure');
    fig.className = 'attention-pane';
    const cap = document.createElement('figcaption');
    const tag = document.createElement('span');
    tag.className = `tag ${cls}`;
    tag.textContent = label;
    cap.append(tag);
    const frameDiv = document.createElement('div');
    frameDiv.className = 'frame';
    frameDiv.append(c);
    fig.append(cap, frameDiv);
    return fig;
  }

  function chart(diffs: number[], step: number) {
    el.chart.toggleAttribute('hidden', diffs.length < 2);
    if (diffs.length < 2) return;
    const max = Math.max(1, ...diffs);
    const x = (k: number) => (k / (diffs.length - 1)) * 300;
    const y = (v: number) => 56 - (v / max) * 52;
    const path = diffs.map((v, k) => `${k ? 'L' : 'M'}${x(k).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    const ns = 'http://www.w3.org/2000/svg';
    const line = document.createElementNS(ns, 'path');
    line.setAttribute('d', path);
    line.setAttribute('class', 'spark-line');
    const mark = document.createElementNS(ns, 'line');
    mark.setAttribute('x1', x(step - 1).toFixed(1));
    mark.setAttribute('x2', x(step - 1).toFixed(1));
    mark.setAttribute('y1', '0');
    mark.setAttribute('y2', '60');
    mark.setAttribute('class', 'spark-mark');
    const title = document.createElementNS(ns, 'title');
    title.textContent = `Mean |Δ| between the original's and the edited x̂₀ at each step (max ${max.toFixed(1)} / 255)`;
    el.chart.replaceChildren(title, line, mark);
    el.chart.dataset.diffs = diffs.map((d) => d.toFixed(3)).join(',');
  }

  function render(s: Readonly<PageState>) {
    const { original, edited } = s.results;
    const first = frameCount(original) ? original : frameCount(edited) ? edited : null;
    el.section.hidden = !first;
    if (!first) return;
    const n = Math.max(frameCount(original), frameCount(edited));
    const step = Math.min(n, Math.max(1, s.timelineStep ?? n));
    if (shown.original === original && shown.edited === edited && shown.step === step) return;
    shown = { original, edited, step };
    el.scrubber.max = String(n);
    el.scrubber.value = String(step);
    el.step.textContent = `step ${step} of ${n}`;
    const panes: HTMLElement[] = [];
    const fo = original && frame(original, step - 1);
    const fe = edited && frame(edited, step - 1);
    if (original && fo) panes.push(pane('Original', '', canvasOf(fo, original.width, original.height, 'original', step)));
    if (edited && fe) panes.push(pane('Edited', 'edited', canvasOf(fe, edited.width, edited.height, 'edited', step)));
    if (original && edited && fo && fe && original.width === edited.width && original.height === edited.height) {
      const d = diffHeatmap(fo, fe, original.width, original.height);
      const c = canvasOf(d.rgba, original.width, original.height, 'difference', step);
      c.dataset.mean = d.mean.toFixed(3);
      panes.push(pane('Difference', 'diff', c));
    }
    el.panes.replaceChildren(...panes);
    const diffs = original && edited ? stepDifferences(original, edited) : [];
    chart(diffs, step);
    el.note.textContent =
      `x̂₀ is the scheduler's estimate of the final image from the noisy latents at that step (DDIM eq. 12), decoded by the VAE. ` +
      (diffs.length ? `The curve is the mean difference between the two at every step.` : '');
  }

  el.scrubber.addEventListener('input', () => store.update((s) => (s.timelineStep = Number(el.scrubber.value))));
  store.subscribe(render);
  return { render };
}
