// "What it does": the view of one variant entry (its row's Explain). Every entry shows its
// method's equation with the symbols bound to its concepts and numbers (web/ui/equations.ts);
// a weight edit also shows its anatomy (`Session.entryAnatomy`, the numbers `studio anatomy
// --json` prints): ‖ΔW‖/‖W‖ per block for to_k and to_v as a chart, the rank of ΔW, and how the
// concept's keys and values moved towards the guide and the preserved concepts. An SPM shows its
// permeability for the last prompt it ran with, steering what the last run's steering did, and
// SLD its guidance terms at every step of the last run with it on (web/ui/sld-terms.ts).

import type { EditAnatomy, TensorAnatomy } from '../../protocol';
import type { Ctx } from '../context';
import type { EditEntry, PageState } from '../store';
import { svg } from '../svg';
import { byId, setStatus } from '../dom';
import { equationFor, fmt } from '../equations';
import { editLabel } from './variant-list';
import { sldSummary, sldTermsChart } from '../sld-terms';


/** A short name for a block: `down_blocks.1.attentions.0` → `down 1.0`. */
export function blockLabel(block: string): string {
  const m = /^(down|up)_blocks\.(\d+)\.attentions\.(\d+)$/.exec(block);
  if (m) return `${m[1]} ${m[2]}.${m[3]}`;
  return block.startsWith('mid_block') ? 'mid' : block;
}

/** The blocks in the order the edit lists them, each with its to_k and to_v rows. */
export function byBlock(rows: TensorAnatomy[]): { block: string; k: TensorAnatomy | null; v: TensorAnatomy | null }[] {
  const out: { block: string; k: TensorAnatomy | null; v: TensorAnatomy | null }[] = [];
  for (const r of rows) {
    let b = out.find((x) => x.block === r.block);
    if (!b) out.push((b = { block: r.block, k: null, v: null }));
    if (r.projection === 'to_k') b.k = r;
    else b.v = r;
  }
  return out;
}

/** ‖ΔW‖/‖W‖ per block, to_k and to_v side by side, as bars (the chart's rects carry their numbers). */
function chart(a: EditAnatomy): SVGSVGElement {
  const blocks = byBlock(a.tensors);
  const W = 640;
  const H = 190;
  const top = Math.max(1e-9, ...a.tensors.map((t) => t.relative));
  const el = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'anatomy-chart', 'data-testid': 'anatomy-chart', role: 'img' }) as SVGSVGElement;
  el.append(svg('title', {}, `‖ΔW‖/‖W‖ of each edited projection (largest ${(100 * top).toFixed(2)} %)`));
  const base = H - 34;
  const slot = (W - 40) / Math.max(1, blocks.length);
  const bar = Math.min(22, slot / 2.6);
  el.append(svg('line', { x1: 36, x2: W, y1: base, y2: base, class: 'axis' }));
  el.append(svg('text', { x: 32, y: 14, 'text-anchor': 'end', class: 'tick' }, `${(100 * top).toFixed(1)}%`));
  el.append(svg('text', { x: 32, y: base, 'text-anchor': 'end', class: 'tick' }, '0'));
  blocks.forEach((b, i) => {
    const x0 = 40 + i * slot + slot / 2;
    for (const [t, dx, cls] of [
      [b.k, -bar - 1, 'bar-k'],
      [b.v, 1, 'bar-v'],
    ] as const) {
      if (!t) continue;
      const h = ((base - 10) * t.relative) / top;
      const r = svg('rect', { x: x0 + dx, y: base - h, width: bar, height: Math.max(0.5, h), class: cls, 'data-tensor': t.tensor, 'data-relative': t.relative, 'data-rank': t.rank });
      r.append(svg('title', {}, `${t.tensor}\n‖ΔW‖/‖W‖ = ${(100 * t.relative).toFixed(3)} %, rank ${t.rank}, σ₁ = ${t.spectralNorm.toFixed(4)}`));
      el.append(r);
    }
    el.append(svg('text', { x: x0, y: base + 14, 'text-anchor': 'middle', class: 'tick' }, blockLabel(b.block)));
  });
  el.append(svg('rect', { x: W - 150, y: H - 14, width: 10, height: 10, class: 'bar-k' }), svg('text', { x: W - 136, y: H - 5, class: 'tick' }, 'to_k'));
  el.append(svg('rect', { x: W - 90, y: H - 14, width: 10, height: 10, class: 'bar-v' }), svg('text', { x: W - 76, y: H - 5, class: 'tick' }, 'to_v'));
  return el;
}

function table(testid: string, head: string[], rows: (string | number)[][]): HTMLTableElement {
  const t = document.createElement('table');
  t.className = 'numbers';
  t.setAttribute('data-testid', testid);
  const tr = document.createElement('tr');
  for (const h of head) {
    const th = document.createElement('th');
    th.textContent = h;
    tr.append(th);
  }
  t.append(tr);
  for (const r of rows) {
    const row = document.createElement('tr');
    for (const c of r) {
      const td = document.createElement('td');
      td.textContent = String(c);
      row.append(td);
    }
    t.append(row);
  }
  return t;
}

const KIND: Record<string, string> = { guide: 'concept → guide', preserve: 'concept ↔ preserved', kept: 'preserved keeps its key' };

export function createAnatomyPanel(ctx: Pick<Ctx, 'store' | 'engine' | 'failed'>) {
  const { store, engine } = ctx;
  const el = { section: byId('anatomy'), title: byId('anatomy-title'), body: byId('anatomy-body') };
  /** The explain request whose anatomy was asked for. */
  let requested: PageState['explain'] = null;
  let shown: { explain: PageState['explain']; facts: unknown; entry: EditEntry | null } = { explain: null, facts: null, entry: null };

  async function read(id: string) {
    store.update((s) => {
      s.busy = 'edit';
      if (s.explain?.id === id) s.explain = { ...s.explain, state: 'reading' };
    });
    setStatus('Reading the edit against the original weights…');
    const m = await engine.request({ type: 'entry-anatomy', id });
    store.update((s) => {
      s.busy = null;
      if (s.explain?.id !== id) return;
      s.explain = m?.status === 'anatomy' ? { id, anatomy: m.anatomy, state: 'done' } : { id, anatomy: null, state: 'failed' };
    });
    if (m?.status === 'error') ctx.failed(m);
    else if (m?.status === 'anatomy') setStatus(`Anatomy of ${m.anatomy.method.toUpperCase()}: ${m.anatomy.tensors.length} tensors.`);
  }

  function render(s: Readonly<PageState>) {
    const entry = s.explain ? (s.edits.find((e) => e.id === s.explain?.id) ?? null) : null;
    el.section.hidden = !entry;
    if (!entry || !s.explain) return;
    if (s.explain.state === 'pending' && entry.info.kind === 'edit' && s.busy === null && s.engine.status === 'ready' && requested !== s.explain) {
      requested = s.explain;
      // Not from inside the store's notification: `read` updates the store.
      queueMicrotask(() => void read(entry.id));
    }
    const facts = s.runFacts[entry.id];
    if (shown.explain === s.explain && shown.facts === facts && shown.entry === entry) return;
    shown = { explain: s.explain, facts, entry };
    const a = s.explain.anatomy;
    el.title.textContent = editLabel(entry);
    const parts: HTMLElement[] = [];
    const eq = equationFor(entry.info, a, facts ?? {});
    const box = document.createElement('div');
    box.className = 'equation';
    box.setAttribute('data-testid', 'equation');
    if (eq) {
      box.dataset.method = eq.method;
      const h = document.createElement('h3');
      h.textContent = eq.title;
      eq.math.setAttribute('display', 'block');
      const ul = document.createElement('ul');
      for (const b of eq.bindings) {
        const li = document.createElement('li');
        li.textContent = b;
        ul.append(li);
      }
      box.append(h, eq.math, ul);
    } else box.textContent = `No equation for ${entry.info.method}.`;
    parts.push(box);
    if (entry.info.kind === 'edit') {
      const wrap = document.createElement('div');
      wrap.className = 'anatomy';
      if (!a) {
        wrap.textContent = s.explain.state === 'failed' ? 'The anatomy could not be read (see the message above).' : 'Reading the edit against the original weights…';
      } else {
        const h = document.createElement('h3');
        const ranks = [...new Set(a.tensors.map((t) => t.rank))].sort((x, y) => x - y);
        h.textContent = `How much each layer changed: ‖ΔW‖/‖W‖ (ΔW has rank ${ranks.join('–')})`;
        wrap.dataset.tensors = String(a.tensors.length);
        wrap.append(h, chart(a));
        const keys = a.keys.map((k) => [KIND[k.kind] ?? k.kind, k.projection, k.kind === 'kept' ? `“${k.concept}”` : `“${k.concept}” · “${k.target}”`, fmt(k.before), fmt(k.after)]);
        if (keys.length) {
          const h2 = document.createElement('h3');
          h2.textContent = 'How the concept’s keys and values moved (cosine, mean over the layers)';
          wrap.append(h2, table('anatomy-keys', ['', 'proj', 'texts', 'before', 'after'], keys));
        }
        const details = document.createElement('details');
        const sum = document.createElement('summary');
        sum.textContent = `Every tensor (${a.tensors.length})`;
        details.append(
          sum,
          table(
            'anatomy-table',
            ['block', 'proj', '‖ΔW‖', '‖W‖', '‖ΔW‖/‖W‖', 'rank', 'σ₁(ΔW)'],
            a.tensors.map((t) => [blockLabel(t.block), t.projection, t.deltaNorm.toFixed(4), t.weightNorm.toFixed(4), `${(100 * t.relative).toFixed(3)} %`, t.rank, t.spectralNorm.toFixed(4)]),
          ),
        );
        wrap.append(details);
      }
      parts.push(wrap);
    }
    if (entry.info.kind === 'sld') {
      const wrap = document.createElement('div');
      wrap.className = 'anatomy';
      const terms = facts?.sldTerms ?? [];
      const h = document.createElement('h3');
      h.textContent = 'The guidance terms at every step of the last run';
      wrap.append(h);
      if (!terms.length) {
        const p = document.createElement('p');
        p.className = 'hint';
        p.textContent = 'Generate with this entry on: its safety term γ, its threshold mask μ and its momentum ν are recorded at every step.';
        wrap.append(p);
      } else {
        const sum = sldSummary(terms);
        const p = document.createElement('p');
        p.className = 'hint';
        p.setAttribute('data-testid', 'guidance-summary');
        p.textContent =
          sum.applied === 0
            ? `γ was not subtracted in these ${sum.total} steps: the warm-up is longer than the run (ν built up to ${fmt(terms[terms.length - 1].momentumNorm)}).`
            : `γ is subtracted from step ${sum.firstApplied} on (${sum.applied} of ${sum.total} steps): on average it is ${(100 * sum.meanRelative).toFixed(1)} % of ‖ε_p − ε_u‖, and μ > 0 on ${(100 * sum.meanCoverage).toFixed(1)} % of the latent.`;
        wrap.append(p, sldTermsChart(terms));
      }
      parts.push(wrap);
    }
    el.body.replaceChildren(...parts);
  }

  byId('anatomy-close').addEventListener('click', () => store.update((s) => (s.explain = null)));
  store.subscribe(render);
  return { render };
}
