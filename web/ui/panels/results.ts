// The stage: the original / edited / difference panes or the prompts × variants grid, previews
// while a run goes, the PNG links (with the generation parameters in text chunks), and the
// caption and numbers of the last image.

import { SCHEDULER_LABELS, formatMs, parametersText } from '../logic';
import { permeabilityNote } from '../variants';
import { diffHeatmap, type Variant } from '../compare';
import { addTextChunks } from '../png';
import type { Ctx } from '../context';
import type { ImageMsg, PreviewMsg } from '../engine-client';
import { enabledEdits, type EditEntry, type Job, type Result, type Target } from '../store';
import { byId, showError } from '../dom';

export interface ResultsDeps {
  /** Facilitated Transport is on (the edited pane's note says so). */
  ft(): boolean;
}

export function createResults(ctx: Pick<Ctx, 'store'>, deps: ResultsDeps) {
  const { store } = ctx;
  const el = {
    panes: byId('panes'),
    paneEdited: byId('pane-edited'),
    paneDiff: byId('pane-diff'),
    canvas: byId<HTMLCanvasElement>('image-original'),
    canvasEdited: byId<HTMLCanvasElement>('image-edited'),
    canvasDiff: byId<HTMLCanvasElement>('image-diff'),
    placeholder: byId('placeholder'),
    placeholderEdited: byId('placeholder-edited'),
    noteOriginal: byId('note-original'),
    noteEdited: byId('note-edited'),
    diffStats: byId('diff-stats'),
    downloadOriginal: byId<HTMLAnchorElement>('download-original'),
    downloadEdited: byId<HTMLAnchorElement>('download-edited'),
    grid: byId('grid'),
    caption: byId('caption'),
    stats: byId('stats'),
  };

  function buildGrid(prompts: string[], variants: Variant[]) {
    el.grid.style.gridTemplateColumns = `minmax(90px, 180px) repeat(${variants.length}, minmax(72px, 200px))`;
    const cells: HTMLElement[] = [document.createElement('div')];
    for (const v of variants) {
      const h = document.createElement('div');
      h.className = 'gh';
      h.textContent = v.label;
      cells.push(h);
    }
    prompts.forEach((p, r) => {
      const rh = document.createElement('div');
      rh.className = 'rh';
      rh.textContent = p;
      cells.push(rh);
      variants.forEach((_, c) => {
        const cell = document.createElement('div');
        cell.className = 'cell pending';
        cell.setAttribute('data-testid', `grid-cell-${r}-${c}`);
        cell.append(document.createElement('canvas'));
        cells.push(cell);
      });
    });
    el.grid.replaceChildren(...cells);
  }

  function targetCanvas(t: Target): HTMLCanvasElement | null {
    if (t.kind === 'original') return el.canvas;
    if (t.kind === 'edited') return el.canvasEdited;
    return el.grid.querySelector<HTMLCanvasElement>(`[data-testid="grid-cell-${t.row}-${t.col}"] canvas`);
  }

  function paint(c: HTMLCanvasElement, width: number, height: number, rgba: Uint8ClampedArray): boolean {
    c.width = width;
    c.height = height;
    const g = c.getContext('2d');
    if (!g) {
      showError('Cannot show the image', 'this browser gave no 2D canvas context');
      return false;
    }
    g.putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
    c.classList.toggle('pixelated', width < 256);
    c.hidden = false;
    return true;
  }

  function showPreview(job: Job, m: PreviewMsg) {
    const c = targetCanvas(job.target);
    if (!c || !paint(c, m.width, m.height, m.rgba)) return;
    c.classList.add('preview');
    c.dataset.previewStep = String(m.step);
    if (job.target.kind === 'original') el.placeholder.hidden = true;
    if (job.target.kind === 'edited') el.placeholderEdited.hidden = true;
    const note = job.target.kind === 'original' ? el.noteOriginal : job.target.kind === 'edited' ? el.noteEdited : null;
    if (note) note.textContent = `preview · step ${m.step}`;
  }

  function editsMeta(ids: string[]): string {
    const list = ids.map((id) => store.state.edits.find((e) => e.id === id)).filter((e): e is EditEntry => !!e);
    return JSON.stringify(list.map((e) => ({ file: e.info.file, method: e.info.method, concepts: e.info.concepts, tensors: e.info.tensors.length })));
  }

  /** A PNG of `c` with the generation parameters in its text chunks, on the link `a`. */
  function attachPng(c: HTMLCanvasElement, a: HTMLAnchorElement, r: Result, name: string) {
    c.toBlob(async (blob) => {
      if (!blob) return;
      const p = r.params;
      const model = store.state.model?.name ?? '';
      const png = addTextChunks(new Uint8Array(await blob.arrayBuffer()), [
        ['prompt', p.prompt],
        ['negative_prompt', p.negativePrompt],
        ['seed', String(p.seed)],
        ['steps', String(p.steps)],
        ['guidance', String(p.guidance)],
        ['scheduler', p.scheduler],
        ['size', `${r.width}x${r.height}`],
        ['model', model],
        ['edits', editsMeta(r.edits)],
        ['parameters', parametersText(p, model)],
        ['Software', 'Erasure Studio'],
      ]);
      if (a.href) URL.revokeObjectURL(a.href);
      a.href = URL.createObjectURL(new Blob([png as BlobPart], { type: 'image/png' }));
      a.download = name;
      a.hidden = false;
    }, 'image/png');
  }

  /** A run's image: into its pane or grid cell, with its PNG link, the difference map and the numbers. */
  function showImage(job: Job, m: ImageMsg) {
    const c = targetCanvas(job.target);
    const r: Result = { width: m.width, height: m.height, rgba: m.rgba, params: m.params, edits: m.edits, requestId: m.requestId, attention: m.attention ?? null, timeline: m.timeline ?? null };
    if (c && paint(c, m.width, m.height, m.rgba)) {
      c.classList.remove('preview');
      delete c.dataset.previewStep;
      c.dataset.seed = String(m.params.seed);
      c.dataset.backend = m.backend;
      c.dataset.requestId = String(m.requestId);
      c.dataset.edits = m.edits.join(',');
    }
    const seedTag = `${m.params.seed}`;
    // One update an image: what the run showed of each entry, and the image where a pane shows it.
    store.update((s) => {
      const facts = { ...s.runFacts };
      for (const id of m.edits) facts[id] = { prompt: m.params.prompt, permeability: m.permeabilities?.[id] ?? null, steering: m.steering ?? null, sldTerms: m.sldTerms ?? [] };
      s.runFacts = facts;
      if (job.target.kind === 'original') s.results.original = r;
      else if (job.target.kind === 'edited') s.results.edited = r;
    });
    if (job.target.kind === 'original') {
      el.placeholder.hidden = true;
      el.noteOriginal.textContent = `${formatMs(m.timing.totalMs)}`;
      attachPng(el.canvas, el.downloadOriginal, r, `erasure-studio-${seedTag}-original.png`);
    } else if (job.target.kind === 'edited') {
      el.placeholderEdited.hidden = true;
      el.noteEdited.textContent = `${m.edits.length} edit${m.edits.length === 1 ? '' : 's'} · ${formatMs(m.timing.totalMs)}${permeabilityNote(m.permeabilities, deps.ft())}`;
      attachPng(el.canvasEdited, el.downloadEdited, r, `erasure-studio-${seedTag}-edited.png`);
      showDiff();
    } else {
      c?.parentElement?.classList.remove('pending');
      if (c) c.title = `${m.params.prompt} · ${store.state.gridVariants[job.target.col]?.label ?? ''}`;
    }
    showMeta(m);
  }

  function showDiff() {
    const { original: a, edited: b } = store.state.results;
    if (!a || !b || a.width !== b.width || a.height !== b.height) return;
    const d = diffHeatmap(a.rgba, b.rgba, a.width, a.height);
    paint(el.canvasDiff, a.width, a.height, d.rgba);
    el.canvasDiff.dataset.mean = d.mean.toFixed(3);
    el.diffStats.textContent = `mean |Δ| ${d.mean.toFixed(1)} / 255 · ${(d.changed * 100).toFixed(0)}% changed · white = ${Math.round(d.scale)}`;
    el.diffStats.title = 'Per pixel, the mean absolute difference over R, G, B; "changed": more than 8 / 255; white: the largest difference';
    el.paneDiff.hidden = false;
  }

  function showMeta(m: ImageMsg) {
    const p = m.params;
    const grid = store.state.view === 'grid';
    el.caption.replaceChildren();
    const strong = document.createElement('span');
    strong.className = 'p';
    strong.textContent = grid ? `Grid of ${store.state.run.count} images` : p.prompt || '(empty prompt)';
    el.caption.append(strong);
    if (p.negativePrompt && !grid) {
      const n = document.createElement('span');
      n.className = 'n';
      n.textContent = `  —  not: ${p.negativePrompt}`;
      el.caption.append(n);
    }
    const stats: [string, string][] = [
      ['Seed', String(p.seed)],
      ['Size', `${m.width}×${m.height}`],
      ['Scheduler', SCHEDULER_LABELS[p.scheduler]],
      ['Guidance', String(p.guidance)],
      ['Per step', formatMs(m.timing.perStepMs)],
      ['Total', formatMs(m.timing.totalMs)],
      ['Device', m.backend === 'webgpu' ? 'WebGPU' : 'CPU'],
    ];
    if (m.timing.previews) stats.push(['Previews', `${m.timing.previews} (${formatMs(m.timing.previewMs ?? 0)})`]);
    el.stats.replaceChildren(
      ...stats.map(([k, v]) => {
        const d = document.createElement('div');
        const dt = document.createElement('dt');
        dt.textContent = k;
        const dd = document.createElement('dd');
        dd.textContent = v;
        d.append(dt, dd);
        return d;
      }),
    );
  }

  /** Which panes show: the grid, or the original with the edited one and the difference when there are edits. */
  store.subscribe((s) => {
    const grid = s.view === 'grid';
    const showEdited = !grid && (enabledEdits(s).length > 0 || s.lastHadEdited);
    el.panes.hidden = grid;
    el.grid.hidden = !grid;
    el.paneEdited.hidden = !showEdited;
    el.paneDiff.hidden = !showEdited || !s.results.edited || !s.results.original;
    el.panes.classList.toggle('single', !showEdited);
  });

  return {
    buildGrid,
    showPreview,
    showImage,
    clearDiffStats: () => (el.diffStats.textContent = ''),
  };
}
