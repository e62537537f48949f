// The sweep chart: UCE (or another closed-form method of the erase panel) computed at several
// values of one hyper-parameter, each generating the concept's prompts and neighbour prompts with
// the form's settings, scored in the page: by the classroom evaluator where the model ships one
// (how often the concept is still detected, how often a neighbour keeps its shape, colour and
// background against the original model's image of the same prompt and seed), else by the
// pixels (how much of each image stayed as the original drew it). Everything runs in this tab;
// the chart's points carry their numbers (data-*).

import type { Ctx } from '../context';
import type { EntryRequest, GenerateParams } from '../../protocol';
import { ERASE_METHODS, type EraseMethod } from '../../protocol';
import type { Checked } from '../logic';
import { parseParams, splitList } from '../logic';
import { canAct } from '../store';
import { svg } from '../svg';
import { byId, clearError, setStatus, showError } from '../dom';
import { parseValues, rgbOf, score, scoreByPixels, seriesNames, type SweepPoint } from '../sweep';

export interface SweepDeps {
  formParams(): Checked;
}


/** Two curves over the swept values: detected (the concept) and kept (the neighbours), both 0–1. */
export function drawChart(el: SVGSVGElement, points: SweepPoint[], param: string) {
  const W = 300;
  const H = 170;
  const x0 = 30;
  const x1 = W - 10;
  const y0 = H - 28;
  const y1 = 10;
  const lo = points[0]?.value ?? 0;
  const hi = points[points.length - 1]?.value ?? 1;
  const x = (v: number) => x0 + ((v - lo) / (hi - lo || 1)) * (x1 - x0);
  const y = (f: number) => y0 - f * (y0 - y1);
  const names = seriesNames(points[0]?.metric);
  const kids: SVGElement[] = [svg('title', {}, `Concept detected and neighbours kept against ${param}`)];
  kids.push(svg('line', { x1: x0, x2: x1, y1: y0, y2: y0, class: 'axis' }), svg('line', { x1: x0, x2: x0, y1: y0, y2: y1, class: 'axis' }));
  for (const f of [0, 0.5, 1]) kids.push(svg('text', { x: x0 - 4, y: y(f) + 4, 'text-anchor': 'end', class: 'tick' }, `${f * 100}%`));
  for (const p of points) kids.push(svg('text', { x: x(p.value), y: y0 + 14, 'text-anchor': 'middle', class: 'tick' }, String(p.value)));
  kids.push(svg('text', { x: (x0 + x1) / 2, y: H - 2, 'text-anchor': 'middle', class: 'tick' }, param));
  // Kept first, detected dashed over it: where the two agree both stay visible.
  for (const [key, cls] of [
    ['kept', 'sweep-kept'],
    ['detected', 'sweep-detected'],
  ] as const) {
    kids.push(svg('path', { d: points.map((p, i) => `${i ? 'L' : 'M'}${x(p.value).toFixed(1)},${y(p[key]).toFixed(1)}`).join(' '), class: `sweep-line ${cls}` }));
    for (const p of points) {
      const c = svg('circle', { cx: x(p.value), cy: y(p[key]), r: 3.5, class: cls, 'data-series': key, 'data-value': p.value, 'data-fraction': p[key] });
      c.append(svg('title', {}, `${param} = ${p.value}: ${names[key]} ${(100 * p[key]).toFixed(0)} %`));
      kids.push(c);
    }
  }
  kids.push(svg('text', { x: x1, y: y1 + 4, 'text-anchor': 'end', class: 'tick legend-detected' }, `● ${names.detected}`));
  kids.push(svg('text', { x: x1, y: y1 + 16, 'text-anchor': 'end', class: 'tick legend-kept' }, `● ${names.kept}`));
  el.replaceChildren(...kids);
  el.dataset.points = JSON.stringify(points);
  el.toggleAttribute('hidden', points.length === 0);
}

export function createSweep(ctx: Ctx, deps: SweepDeps) {
  const { store, engine } = ctx;
  const el = {
    param: byId<HTMLInputElement>('sweep-param'),
    values: byId<HTMLInputElement>('sweep-values'),
    concept: byId<HTMLInputElement>('sweep-concept'),
    neighbours: byId<HTMLInputElement>('sweep-neighbours'),
    run: byId<HTMLButtonElement>('sweep-run'),
    note: byId('sweep-note'),
    chart: document.getElementById('sweep-chart') as unknown as SVGSVGElement,
    method: byId<HTMLSelectElement>('erase-method'),
    concepts: byId<HTMLInputElement>('erase-concepts'),
    preserve: byId<HTMLInputElement>('erase-preserve'),
    guides: byId<HTMLInputElement>('erase-guides'),
    params: byId<HTMLInputElement>('erase-params'),
  };
  let sweeping = false;

  async function generateRgb(params: GenerateParams, edits: string[]): Promise<Uint8Array> {
    const m = await engine.request({ type: 'generate', params, edits });
    if (m?.status === 'error') throw Object.assign(new Error(m.message), { msg: m });
    if (m?.status !== 'image') throw new Error('the sweep was interrupted');
    return rgbOf(m.rgba);
  }

  /** One after another: a request supersedes the ones still unanswered (engine-client.ts). */
  async function generateAll(prompts: string[], params: (p: string) => GenerateParams, edits: string[]): Promise<Uint8Array[]> {
    const out: Uint8Array[] = [];
    for (const p of prompts) out.push(await generateRgb(params(p), edits));
    return out;
  }

  async function evaluate(images: Uint8Array[]): Promise<Record<string, string>[]> {
    const model = store.state.bundled.find((b) => b.id === store.state.model?.id);
    const files = model?.evaluator ?? [];
    const url = (p: string) => new URL(`models/${model?.id}/${p}`, location.href).href;
    const config = files.find((f) => f.path.endsWith('config.json'));
    const weights = files.find((f) => f.path.endsWith('.safetensors'));
    if (!model || !config || !weights) throw new Error('no evaluator');
    const rgb = new Uint8Array(images.reduce((n, i) => n + i.length, 0));
    let o = 0;
    for (const i of images) {
      rgb.set(i, o);
      o += i.length;
    }
    const m = await engine.request({ type: 'evaluate', evaluator: { config: url(config.path), weights: url(weights.path) }, rgb, count: images.length });
    if (m?.status === 'error') throw Object.assign(new Error(m.message), { msg: m });
    if (m?.status !== 'evaluation') throw new Error('the sweep was interrupted');
    return m.classes;
  }

  async function run() {
    const s = store.state;
    clearError();
    const method = ERASE_METHODS.includes(el.method.value as EraseMethod) ? (el.method.value as EraseMethod) : null;
    if (!method) return showError('Choose a closed-form method', 'The sweep recomputes an edit of the erase panel (UCE, TIME, RECE, SPEED or MACE) at each value: choose one under “Erase a concept”.');
    // The classroom evaluator where the model ships one; else the pixels against the original's.
    const byEvaluator = !!s.bundled.find((b) => b.id === s.model?.id)?.evaluator?.length;
    const values = parseValues(el.values.value);
    if (!values.ok) return showError('Check the sweep values', values.message);
    const param = el.param.value.trim();
    if (!/^[a-z_]+$/.test(param)) return showError('Check the swept parameter', `“${param}” is not a hyper-parameter name (e.g. erase_scale, lamb, preserve_scale)`);
    const base = parseParams(el.params.value);
    if (!base.ok) return showError('Check the hyper-parameters', base.message);
    const concepts = splitList(el.concepts.value);
    if (!concepts.length) return showError('Name a concept', 'Type the concept to erase under “Erase a concept” (e.g. skull).');
    const conceptPrompts = splitList(el.concept.value);
    const neighbourPrompts = splitList(el.neighbours.value);
    if (!conceptPrompts.length || !neighbourPrompts.length) return showError('Name the prompts', 'The sweep needs prompts of the concept and neighbour prompts, “;” separated.');
    const form = deps.formParams();
    if (!form.ok) return showError('Check the settings', form.message);
    const params = (prompt: string): GenerateParams => ({ ...form.params, prompt, previewEvery: 0 });
    sweeping = true;
    store.update((st) => (st.busy = 'edit'));
    const t0 = performance.now();
    const points: SweepPoint[] = [];
    const id = 'sweep';
    try {
      setStatus(`Sweep: the original model's images…`);
      const neighbourOriginals = await generateAll(neighbourPrompts, params, []);
      const conceptOriginals = byEvaluator ? [] : await generateAll(conceptPrompts, params, []);
      const originals = byEvaluator ? await evaluate(neighbourOriginals) : [];
      for (const [k, v] of values.values.entries()) {
        setStatus(`Sweep: ${method.toUpperCase()} with ${param} = ${v} (${k + 1} of ${values.values.length})…`);
        const request: EntryRequest = { kind: 'erase', method, concepts, guides: splitList(el.guides.value), preserve: splitList(el.preserve.value), params: { ...base.params, [param]: v } };
        await engine.request({ type: 'entry-remove', id });
        const e = await engine.request({ type: 'entry-compute', id, request });
        if (e?.status === 'error') throw Object.assign(new Error(e.message), { msg: e });
        const concept = await generateAll(conceptPrompts, params, [id]);
        const neighbours = await generateAll(neighbourPrompts, params, [id]);
        if (byEvaluator) {
          const classes = await evaluate([...concept, ...neighbours]);
          points.push(score(v, classes.slice(0, concept.length), classes.slice(concept.length), originals));
        } else points.push(scoreByPixels(v, concept, conceptOriginals, neighbours, neighbourOriginals));
        drawChart(el.chart, points, param);
      }
      const images = values.values.length * (conceptPrompts.length + neighbourPrompts.length) + neighbourPrompts.length + (byEvaluator ? 0 : conceptPrompts.length);
      const how = byEvaluator
        ? 'scored by the classroom evaluator (concept detected: it sees a skull; neighbours kept: same shape, colour and background colour as the original’s image)'
        : `compared with the original model's images pixel by pixel (unchanged: every channel within 32 of 255; this model has no evaluator)`;
      el.note.textContent = `${method.toUpperCase()} on ${concepts.join(', ')} at ${values.values.length} values of ${param}: ${images} images ${how}, in ${((performance.now() - t0) / 1000).toFixed(1)} s (seed ${form.params.seed}, ${form.params.steps} steps).`;
      setStatus('Sweep done: hover a point for its numbers.');
    } catch (err) {
      const msg = (err as { msg?: Parameters<Ctx['failed']>[0] }).msg;
      if (msg) ctx.failed(msg);
      else showError('The sweep stopped', err instanceof Error ? err.message : String(err));
    } finally {
      await engine.request({ type: 'entry-remove', id });
      sweeping = false;
      store.update((st) => (st.busy = null));
    }
  }

  el.run.addEventListener('click', () => void run());
  store.subscribe((s) => (el.run.disabled = sweeping || !canAct(s)));
}
