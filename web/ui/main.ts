// The page. It never touches wasm or the GPU: a web worker (web/worker/worker.ts) does, and the
// two talk through the typed messages of web/protocol.ts.

import {
  SCHEDULERS,
  isFromWorker,
  type BackendChoice,
  type FileEntry,
  type FromWorker,
  type ModelInfo,
  type ModelSource,
  type ToWorker,
} from '../protocol';
import { missingMessage, selectModelFiles } from '../model-files';
import { SCHEDULER_LABELS, checkForm, formatBytes, formatMs, fraction, randomSeed, sizeOptions, urlSettings, type FormValues } from './logic';

interface BundledModel {
  id: string;
  name: string;
  description: string;
  files: FileEntry[];
}

const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const el = {
  engineDot: $('engine-dot'),
  engineText: $('engine-text'),
  backend: $<HTMLSelectElement>('backend'),
  model: $<HTMLSelectElement>('model-select'),
  openFolder: $<HTMLButtonElement>('open-folder'),
  folderInput: $<HTMLInputElement>('folder-input'),
  modelMeta: $('model-meta'),
  loadBar: $('load-bar'),
  loadFill: $('load-fill'),
  form: $<HTMLFormElement>('form'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  negative: $<HTMLTextAreaElement>('negative-prompt'),
  seed: $<HTMLInputElement>('seed'),
  dice: $<HTMLButtonElement>('dice'),
  steps: $<HTMLInputElement>('steps'),
  guidance: $<HTMLInputElement>('guidance'),
  size: $<HTMLSelectElement>('size'),
  scheduler: $<HTMLSelectElement>('scheduler'),
  generate: $<HTMLButtonElement>('generate'),
  cancel: $<HTMLButtonElement>('cancel'),
  error: $('error'),
  errorTitle: $('error-title'),
  errorText: $('error-text'),
  errorClose: $<HTMLButtonElement>('error-close'),
  canvas: $<HTMLCanvasElement>('image-original'),
  placeholder: $('placeholder'),
  progress: $<HTMLProgressElement>('progress'),
  progressText: $('progress-text'),
  caption: $('caption'),
  stats: $('stats'),
  download: $<HTMLAnchorElement>('download'),
  status: $('status'),
};

const LOCAL = '__local__';
const events: FromWorker[] = [];
const settings = urlSettings(location.search);

const state = {
  worker: null as Worker | null,
  engine: 'starting' as 'starting' | 'ready' | 'failed',
  backendChoice: settings.backend as BackendChoice,
  backend: null as 'webgpu' | 'cpu' | null,
  bundled: [] as BundledModel[],
  local: null as ModelSource | null,
  model: null as { name: string; info: ModelInfo; source: ModelSource } | null,
  busy: null as null | 'load' | 'generate',
  requestId: 0,
  /** A load to start once the engine is ready. */
  pendingSource: null as ModelSource | null,
  /** The source of the load in flight (`loaded` does not echo it: Files do not round-trip). */
  pendingLoad: null as ModelSource | null,
  t0: performance.now(),
  firstImage: false,
};

function setStatus(text: string) {
  el.status.textContent = text;
}

function showError(title: string, message: string, sticky = false) {
  stickyError = sticky;
  el.errorTitle.textContent = title;
  el.errorText.textContent = message;
  el.error.hidden = false;
}

/** The WebGPU-fallback notice stays until dismissed; other errors go when the next action starts. */
let stickyError = false;

function clearError(force = false) {
  if (stickyError && !force) return;
  stickyError = false;
  el.error.hidden = true;
  el.errorText.textContent = '';
}

function refreshControls() {
  const ready = state.engine === 'ready';
  const idle = state.busy === null;
  el.generate.disabled = !(ready && idle && state.model);
  el.cancel.disabled = state.busy !== 'generate';
  el.model.disabled = !ready || !idle;
  el.openFolder.disabled = !ready || !idle;
  el.backend.disabled = !idle || state.engine === 'starting';
  el.generate.textContent = state.busy === 'generate' ? 'Generating…' : 'Generate';
}

function send(msg: ToWorker) {
  state.worker?.postMessage(msg);
}

function startWorker() {
  state.worker?.terminate();
  state.engine = 'starting';
  state.backend = null;
  state.busy = null;
  el.engineDot.className = 'dot';
  el.engineText.textContent = 'Starting…';
  refreshControls();
  const w = new Worker(new URL('../worker/worker.ts', import.meta.url), { type: 'module', name: 'studio-engine' });
  w.onmessage = (ev: MessageEvent<unknown>) => onWorker(ev.data);
  w.onerror = (ev: ErrorEvent) => {
    ev.preventDefault();
    state.engine = 'failed';
    state.busy = null;
    el.engineDot.className = 'dot bad';
    el.engineText.textContent = 'Engine failed';
    showError('The studio engine could not start', `${ev.message || 'the worker script failed to load'}. Reload the page; if it persists, rebuild with scripts/build-web.sh.`);
    setStatus('Engine failed to start.');
    refreshControls();
  };
  state.worker = w;
  setStatus('Starting the engine…');
  send({ type: 'init', backend: state.backendChoice, tasksMax: settings.tasksMax });
}

function loadModel(source: ModelSource) {
  if (state.engine !== 'ready') {
    state.pendingSource = source;
    return;
  }
  clearError();
  state.busy = 'load';
  state.requestId++;
  el.loadBar.hidden = false;
  el.loadFill.style.width = '0%';
  el.modelMeta.textContent = `Loading ${source.name}…`;
  setStatus(`Loading ${source.name}…`);
  refreshControls();
  send({ type: 'load', requestId: state.requestId, source });
}

function formValues(): FormValues {
  return {
    prompt: el.prompt.value,
    negativePrompt: el.negative.value,
    seed: el.seed.value,
    steps: el.steps.value,
    guidance: el.guidance.value,
    size: el.size.value,
    scheduler: el.scheduler.value,
  };
}

function generate() {
  if (!state.model || state.busy) return;
  for (const i of [el.seed, el.steps, el.guidance]) i.classList.remove('invalid');
  const checked = checkForm(formValues(), state.model.info);
  if (!checked.ok) {
    const input = { seed: el.seed, steps: el.steps, guidance: el.guidance } as Record<string, HTMLInputElement>;
    input[checked.field]?.classList.add('invalid');
    showError('Check the settings', checked.message);
    return;
  }
  clearError();
  state.busy = 'generate';
  state.requestId++;
  el.progress.value = 0;
  el.progressText.textContent = 'Encoding prompt…';
  setStatus('Encoding the prompt…');
  refreshControls();
  send({ type: 'generate', requestId: state.requestId, params: checked.params });
}

function engineLabel(m: Extract<FromWorker, { status: 'ready' }>) {
  return m.backend === 'webgpu' ? `WebGPU · ${m.adapter}` : `CPU${m.fallbackReason ? ' (WebGPU unavailable)' : ''}`;
}

function onWorker(data: unknown) {
  if (!isFromWorker(data)) {
    console.warn('unexpected message from the worker', data);
    return;
  }
  const m = data;
  // The last messages without pixels, for tests and for looking at per-step timings in devtools.
  if (m.status !== 'image') events.push(m);
  if (events.length > 2000) events.splice(0, 1000);
  switch (m.status) {
    case 'ready': {
      state.engine = 'ready';
      state.backend = m.backend;
      el.engineDot.className = `dot ${m.backend === 'webgpu' ? 'ok' : 'warn'}`;
      el.engineText.textContent = engineLabel(m);
      el.engineText.parentElement!.title = m.fallbackReason ?? `maxStorageBufferBindingSize ${m.maxStorageBuffer ? formatBytes(m.maxStorageBuffer) : '–'}${m.shaderF16 ? ', shader-f16' : ''}`;
      if (m.fallbackReason) showError('Running on the CPU', m.fallbackReason, true);
      setStatus(`Engine ready on ${m.backend === 'webgpu' ? 'WebGPU' : 'the CPU'} (${formatMs(m.initMs)}).`);
      refreshControls();
      const src = state.pendingSource ?? state.model?.source ?? null;
      state.pendingSource = null;
      if (src) requestLoad(src);
      return;
    }
    case 'loading': {
      if (m.requestId !== state.requestId) return;
      const f = fraction(m.loaded, m.total);
      el.loadFill.style.width = `${(f * 100).toFixed(1)}%`;
      const what = m.file ? ` · ${m.file}` : '';
      setStatus(`Loading model${what} · ${Math.round(f * 100)}% (${formatBytes(m.loaded)} of ${formatBytes(m.total)})`);
      return;
    }
    case 'loaded': {
      if (m.requestId !== state.requestId) return;
      state.busy = null;
      const source = state.pendingLoad;
      state.pendingLoad = null;
      state.model = source ? { name: m.name, info: m.info, source } : null;
      el.loadBar.hidden = true;
      applyModelInfo(m.info);
      const about = source?.kind === 'url' ? state.bundled.find((b) => b.id === source.id)?.description : 'from a local folder';
      el.modelMeta.textContent =
        `${about ? `${about} ` : ''}${formatBytes(m.bytes)} · ${m.info.defaultWidth}×${m.info.defaultHeight} px · ` +
        `text ${m.info.textWidth}-d × ${m.info.textLayers} layers · loaded in ${formatMs(m.ms)}`;
      setStatus(`Ready: ${m.name} on ${state.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}. Type a prompt and press Generate.`);
      refreshControls();
      return;
    }
    case 'progress': {
      if (m.requestId !== state.requestId) return;
      el.progress.value = fraction(m.step, m.total);
      el.progressText.textContent = `Step ${m.step} / ${m.total}`;
      setStatus(`Step ${m.step} of ${m.total} · ${formatMs(m.stepMs)} per step · ${formatMs(m.elapsedMs)} so far`);
      return;
    }
    case 'image': {
      if (m.requestId !== state.requestId) return;
      state.busy = null;
      showImage(m);
      refreshControls();
      return;
    }
    case 'cancelled': {
      if (m.requestId !== state.requestId) return;
      state.busy = null;
      el.progressText.textContent = `Cancelled at ${m.step} / ${m.total}`;
      setStatus(`Cancelled after step ${m.step} of ${m.total}. Ready.`);
      refreshControls();
      return;
    }
    case 'disposed':
      return;
    case 'error': {
      const titles = { init: 'The engine could not start', load: 'The model could not be loaded', generate: 'Generation failed' };
      showError(titles[m.phase], m.message);
      if (m.phase === 'load') {
        el.loadBar.hidden = true;
        // The worker dropped the previous model before trying the new one.
        state.model = null;
        el.modelMeta.textContent = 'No model loaded: pick another model or folder.';
        el.model.value = '';
      }
      if (m.phase === 'init') {
        state.engine = 'failed';
        el.engineDot.className = 'dot bad';
        el.engineText.textContent = 'Engine failed';
      }
      state.busy = null;
      el.progressText.textContent = '';
      setStatus(m.phase === 'generate' ? 'Generation failed; the model is still loaded.' : 'Failed: see the message above.');
      refreshControls();
      if (m.fatal) {
        const src = state.model?.source ?? null;
        state.model = null;
        state.pendingSource = src;
        startWorker();
      }
      return;
    }
  }
}

declare global {
  interface Window {
    __studio?: { ready(): boolean; events: FromWorker[] };
  }
}

function requestLoad(source: ModelSource) {
  state.pendingLoad = source;
  loadModel(source);
}

function applyModelInfo(info: ModelInfo) {
  const previous = Number(el.size.value);
  const sizes = sizeOptions(info);
  el.size.replaceChildren(
    ...sizes.map((s) => {
      const o = new Option(`${s} × ${s}${s === info.defaultWidth ? '  (native)' : ''}`, String(s));
      return o;
    }),
  );
  el.size.value = String(sizes.includes(previous) ? previous : info.defaultWidth);
  if (!el.scheduler.dataset.touched && (SCHEDULERS as readonly string[]).includes(info.defaultScheduler)) el.scheduler.value = info.defaultScheduler;
}

function showImage(m: Extract<FromWorker, { status: 'image' }>) {
  const c = el.canvas;
  c.width = m.width;
  c.height = m.height;
  const ctx = c.getContext('2d');
  if (!ctx) {
    showError('Cannot show the image', 'this browser gave no 2D canvas context');
    return;
  }
  ctx.putImageData(new ImageData(new Uint8ClampedArray(m.rgba), m.width, m.height), 0, 0);
  c.classList.toggle('pixelated', m.width < 256);
  c.hidden = false;
  el.placeholder.hidden = true;
  c.dataset.seed = String(m.params.seed);
  c.dataset.backend = m.backend;
  c.dataset.requestId = String(m.requestId);
  el.progress.value = 1;
  el.progressText.textContent = `Done · ${m.params.steps} steps`;
  const p = m.params;
  el.caption.replaceChildren();
  const strong = document.createElement('span');
  strong.className = 'p';
  strong.textContent = p.prompt || '(empty prompt)';
  el.caption.append(strong);
  if (p.negativePrompt) {
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
  c.toBlob((blob) => {
    if (!blob) return;
    if (el.download.href) URL.revokeObjectURL(el.download.href);
    el.download.href = URL.createObjectURL(blob);
    el.download.download = `erasure-studio-${p.seed}.png`;
    el.download.hidden = false;
  }, 'image/png');
  const truncated = m.promptTruncated ? ' The prompt was longer than 77 tokens and was cut.' : '';
  const first = state.firstImage ? '' : `, first image ${formatMs(performance.now() - state.t0)} after page load`;
  state.firstImage = true;
  setStatus(`Done in ${formatMs(m.timing.totalMs)} (${formatMs(m.timing.perStepMs)} per step${first}).${truncated}`);
}

async function fetchIndex(): Promise<BundledModel[]> {
  try {
    const res = await fetch(new URL('models/index.json', location.href));
    if (!res.ok) return [];
    const j = (await res.json()) as { models?: BundledModel[] };
    return Array.isArray(j.models) ? j.models : [];
  } catch {
    return [];
  }
}

function bundledSource(m: BundledModel): ModelSource {
  return { kind: 'url', id: m.id, name: m.name, base: new URL(`models/${m.id}/`, location.href).href, files: m.files };
}

function fillModelSelect() {
  const placeholder = new Option('Choose a model…', '');
  placeholder.disabled = true;
  const opts: HTMLOptionElement[] = [placeholder, ...state.bundled.map((m) => new Option(m.name, m.id))];
  if (state.local) opts.push(new Option(`${state.local.name} (local folder)`, LOCAL));
  if (opts.length === 1) placeholder.text = 'No bundled model: open a folder';
  el.model.replaceChildren(...opts);
}

function onFolderPicked() {
  const list = Array.from(el.folderInput.files ?? []);
  el.folderInput.value = '';
  if (!list.length) return;
  const entries = list.map((f) => ({ path: f.webkitRelativePath || f.name, item: f }));
  const sel = selectModelFiles(entries);
  const folder = (entries[0].path.split('/')[0] || 'folder').trim();
  if (sel.missing.length) {
    showError('This folder is not a complete model', missingMessage(sel.missing, sel.files.map((f) => f.path)));
    setStatus('Pick a diffusers model folder (with unet/, vae/, text_encoder/, scheduler/).');
    return;
  }
  state.local = { kind: 'local', name: folder, files: sel.files.map((f) => ({ path: f.path, file: f.item })) };
  fillModelSelect();
  el.model.value = LOCAL;
  requestLoad(state.local);
}

function init() {
  el.scheduler.replaceChildren(...SCHEDULERS.map((s) => new Option(SCHEDULER_LABELS[s], s)));
  el.scheduler.value = 'ddim';
  el.scheduler.addEventListener('change', () => (el.scheduler.dataset.touched = '1'));
  el.prompt.value = 'a big red star on a blue striped background';
  el.seed.value = '42';
  el.steps.value = '20';
  el.guidance.value = '7.5';
  el.size.replaceChildren(new Option('—', ''));
  el.backend.value = state.backendChoice;

  el.form.addEventListener('submit', (e) => {
    e.preventDefault();
    generate();
  });
  el.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
      e.preventDefault();
      generate();
    }
  });
  el.cancel.addEventListener('click', () => {
    if (state.busy !== 'generate') return;
    send({ type: 'cancel' });
    el.progressText.textContent = 'Cancelling…';
    setStatus('Cancelling after the current step…');
  });
  el.dice.addEventListener('click', () => {
    el.seed.value = String(randomSeed());
    el.seed.classList.remove('invalid');
  });
  el.errorClose.addEventListener('click', () => clearError(true));
  el.openFolder.addEventListener('click', () => el.folderInput.click());
  el.folderInput.addEventListener('change', onFolderPicked);
  el.model.addEventListener('change', () => {
    const v = el.model.value;
    if (v === LOCAL && state.local) requestLoad(state.local);
    const b = state.bundled.find((m) => m.id === v);
    if (b) requestLoad(bundledSource(b));
  });
  el.backend.addEventListener('change', () => {
    state.backendChoice = el.backend.value === 'cpu' ? 'cpu' : 'auto';
    clearError(true);
    const src = state.model?.source ?? state.pendingLoad;
    state.model = null;
    state.pendingSource = src;
    startWorker();
  });

  window.__studio = { ready: () => state.engine === 'ready' && state.busy === null && state.model !== null, events };
  refreshControls();
  startWorker();
  void fetchIndex().then((models) => {
    state.bundled = models;
    fillModelSelect();
    const wanted = models.find((m) => m.id === settings.model) ?? models.find((m) => m.id === 'classroom') ?? models[0];
    if (wanted) {
      el.model.value = wanted.id;
      requestLoad(bundledSource(wanted));
    } else {
      el.modelMeta.textContent = 'No bundled model here: open a diffusers model folder from your disk.';
    }
  });
}

init();
