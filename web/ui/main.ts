// The page. It never touches wasm or the GPU: a web worker (web/worker/worker.ts) does, and the
// two talk through the typed messages of web/protocol.ts.
//
// A click on Generate becomes a queue of runs (jobs): the original (no edits), then the edited
// variant (the enabled edits), or one run per grid cell. The worker applies / reverts edits
// before each run, so every variant comes from the one loaded model.

import {
  ERASE_METHODS,
  SCHEDULERS,
  isFromWorker,
  type BackendChoice,
  type DownloadFile,
  type EditInfo,
  type EraseMethod,
  type EraserMethod,
  type FileEntry,
  type FromWorker,
  type GenerateParams,
  type ModelInfo,
  type ModelSource,
  type ToWorker,
} from '../protocol';
import { missingMessage, selectModelFiles } from '../model-files';
import { HUB_ENDPOINT, HUB_PRESETS, isRepoId } from '../hub/presets';
import { OpfsStore, clearCache, opfsAvailable, summarize } from '../hub/store';
import {
  SCHEDULER_LABELS,
  backendChoice,
  checkForm,
  formatBytes,
  formatMs,
  formatSpeed,
  fraction,
  parametersText,
  parseParams,
  randomSeed,
  sizeOptions,
  splitList,
  urlSettings,
  type FormValues,
} from './logic';
import {
  FIT_METHODS,
  STEERING_METHODS,
  addedStatus,
  eraserRequest,
  isFitMethod,
  isSteeringMethod,
  kindName,
  permeabilityNote,
  ringABellRequest,
  steeringRequest,
  variantDetails,
  variantLabel,
} from './variants';
import { defaultGridPrompts, diffHeatmap, gridVariants, type Variant } from './compare';
import { addTextChunks } from './png';
import { fromHash, toHash, type Shared } from './share';

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
  hubPanel: $('hub-panel'),
  hubAbout: $('hub-about'),
  hubRepoField: $('hub-repo-field'),
  hubRepo: $<HTMLInputElement>('hub-repo'),
  hubDownload: $<HTMLButtonElement>('hub-download'),
  downloads: $<HTMLUListElement>('download-list'),
  cacheOpen: $<HTMLButtonElement>('cache-open'),
  cachePanel: $('cache-panel'),
  cacheList: $<HTMLUListElement>('cache-list'),
  cacheUsage: $('cache-usage'),
  cacheClear: $<HTMLButtonElement>('cache-clear'),
  cacheClose: $<HTMLButtonElement>('cache-close'),
  form: $<HTMLFormElement>('form'),
  prompt: $<HTMLTextAreaElement>('prompt'),
  negative: $<HTMLTextAreaElement>('negative-prompt'),
  seed: $<HTMLInputElement>('seed'),
  dice: $<HTMLButtonElement>('dice'),
  steps: $<HTMLInputElement>('steps'),
  guidance: $<HTMLInputElement>('guidance'),
  size: $<HTMLSelectElement>('size'),
  scheduler: $<HTMLSelectElement>('scheduler'),
  previewEvery: $<HTMLSelectElement>('preview-every'),
  viewSide: $<HTMLInputElement>('view-side'),
  viewGrid: $<HTMLInputElement>('view-grid'),
  gridField: $('grid-field'),
  gridPrompts: $<HTMLTextAreaElement>('grid-prompts'),
  generate: $<HTMLButtonElement>('generate'),
  cancel: $<HTMLButtonElement>('cancel'),
  eraseMethod: $<HTMLSelectElement>('erase-method'),
  eraseConcepts: $<HTMLInputElement>('erase-concepts'),
  eraseGuides: $<HTMLInputElement>('erase-guides'),
  erasePreserve: $<HTMLInputElement>('erase-preserve'),
  eraseOthers: $<HTMLInputElement>('erase-others'),
  eraseParams: $<HTMLInputElement>('erase-params'),
  eraseExtra: $('erase-extra'),
  eraseApply: $<HTMLButtonElement>('erase-apply'),
  eraseTime: $('erase-time'),
  editInput: $<HTMLInputElement>('edit-input'),
  editDrop: $('edit-drop'),
  editList: $<HTMLUListElement>('edit-list'),
  ftField: $('ft-field'),
  ft: $<HTMLInputElement>('ft'),
  error: $('error'),
  errorTitle: $('error-title'),
  errorText: $('error-text'),
  errorClose: $<HTMLButtonElement>('error-close'),
  panes: $('panes'),
  paneEdited: $('pane-edited'),
  paneDiff: $('pane-diff'),
  canvas: $<HTMLCanvasElement>('image-original'),
  canvasEdited: $<HTMLCanvasElement>('image-edited'),
  canvasDiff: $<HTMLCanvasElement>('image-diff'),
  placeholder: $('placeholder'),
  placeholderEdited: $('placeholder-edited'),
  noteOriginal: $('note-original'),
  noteEdited: $('note-edited'),
  diffStats: $('diff-stats'),
  downloadOriginal: $<HTMLAnchorElement>('download-original'),
  downloadEdited: $<HTMLAnchorElement>('download-edited'),
  grid: $('grid'),
  progress: $<HTMLProgressElement>('progress'),
  progressText: $('progress-text'),
  caption: $('caption'),
  stats: $('stats'),
  share: $<HTMLButtonElement>('share'),
  shareUrl: $<HTMLInputElement>('share-url'),
  dropOverlay: $('drop-overlay'),
  status: $('status'),
};

const LOCAL = '__local__';
const HUB_OTHER = 'hub:other';
const events: FromWorker[] = [];
const previews: number[] = [];
const timings: { totalMs: number; perStepMs: number; stepsMs: number; decodeMs: number }[] = [];
let firstImageAt: number | null = null;
const settings = urlSettings(location.search);
/** Settings restored from the URL hash (a shared experiment). */
const shared: Shared = fromHash(location.hash);
/** `?hub=` points the hub presets at another server with the hub's URL layout (a mirror; tests use a local one). */
const hubEndpoint = (() => {
  const q = new URLSearchParams(location.search).get('hub');
  try {
    return q ? new URL(q, location.href).href.replace(/\/$/, '') : HUB_ENDPOINT;
  } catch {
    return HUB_ENDPOINT;
  }
})();

interface EditEntry {
  id: string;
  info: EditInfo;
  bytes: Uint8Array;
  enabled: boolean;
}

type Target = { kind: 'original' } | { kind: 'edited' } | { kind: 'grid'; row: number; col: number };

interface Job {
  params: GenerateParams;
  edits: string[];
  target: Target;
}

interface Result {
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
  params: GenerateParams;
  edits: string[];
  requestId: number;
}

const state = {
  worker: null as Worker | null,
  engine: 'starting' as 'starting' | 'ready' | 'failed',
  backendChoice: settings.backend as BackendChoice,
  backend: null as 'webgpu' | 'cpu' | null,
  bundled: [] as BundledModel[],
  local: null as ModelSource | null,
  model: null as { name: string; id: string; info: ModelInfo; source: ModelSource } | null,
  busy: null as null | 'load' | 'generate' | 'edit',
  requestId: 0,
  /** A load to start once the engine is ready. */
  pendingSource: null as ModelSource | null,
  /** The source of the load in flight (`loaded` does not echo it: Files do not round-trip). */
  pendingLoad: null as ModelSource | null,
  t0: performance.now(),
  firstImage: false,
  edits: [] as EditEntry[],
  editCounter: 0,
  jobs: [] as Job[],
  current: null as Job | null,
  runStart: 0,
  runCount: 0,
  results: { original: null as Result | null, edited: null as Result | null },
  /** Whether the latest run set had an edited variant (keeps its pane visible). */
  lastHadEdited: false,
  gridVariants: [] as Variant[],
  /** The hash settings not applied yet (size and scheduler wait for the model). */
  restore: { ...shared } as Shared,
};

function setStatus(text: string) {
  el.status.textContent = text;
}

/** The WebGPU-fallback notice stays until dismissed; other errors go when the next action starts. */
let stickyError = false;

function showError(title: string, message: string, sticky = false) {
  stickyError = sticky;
  el.errorTitle.textContent = title;
  el.errorText.textContent = message;
  el.error.hidden = false;
}

function clearError(force = false) {
  if (stickyError && !force) return;
  stickyError = false;
  el.error.hidden = true;
  el.errorText.textContent = '';
}

function enabledEdits(): EditEntry[] {
  return state.edits.filter((e) => e.enabled);
}

function refreshControls() {
  const ready = state.engine === 'ready';
  const idle = state.busy === null;
  el.generate.disabled = !(ready && idle && state.model);
  el.cancel.disabled = state.busy !== 'generate';
  el.model.disabled = !ready || !idle;
  el.openFolder.disabled = !ready || !idle;
  el.hubDownload.disabled = !ready || !idle;
  el.backend.disabled = !idle || state.engine === 'starting';
  el.eraseApply.disabled = !(ready && idle && state.model);
  el.cacheClear.disabled = state.busy === 'load';
  const n = enabledEdits().length;
  el.generate.textContent =
    state.busy === 'generate' ? 'Generating…' : isGrid() ? 'Generate grid' : n ? 'Generate original + edited' : 'Generate';
  for (const input of el.editList.querySelectorAll<HTMLInputElement | HTMLButtonElement>('input, button')) input.disabled = !idle;
}

function send(msg: ToWorker, transfer: Transferable[] = []) {
  state.worker?.postMessage(msg, transfer);
}

function startWorker() {
  state.worker?.terminate();
  state.engine = 'starting';
  state.backend = null;
  state.busy = null;
  state.jobs = [];
  state.current = null;
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

// ---------------------------------------------------------------- models

function sourceId(source: ModelSource): string {
  return source.kind === 'local' ? LOCAL : source.id;
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
  el.downloads.hidden = source.kind !== 'hub';
  el.downloads.replaceChildren();
  el.modelMeta.textContent = `${source.kind === 'hub' ? 'Fetching' : 'Loading'} ${source.name}…`;
  setStatus(`${source.kind === 'hub' ? 'Fetching' : 'Loading'} ${source.name}…`);
  refreshControls();
  send({ type: 'load', requestId: state.requestId, source });
}

function requestLoad(source: ModelSource) {
  state.pendingLoad = source;
  loadModel(source);
}

function hubSource(repo: string): ModelSource {
  const preset = HUB_PRESETS.find((p) => p.repo === repo);
  return {
    kind: 'hub',
    id: `hub:${repo}`,
    name: preset?.name ?? repo,
    endpoint: hubEndpoint,
    repo,
    revision: preset?.revision ?? 'main',
    pinned: preset?.pinned,
  };
}

function applyModelInfo(info: ModelInfo) {
  const previous = Number(state.restore.size ?? el.size.value);
  const sizes = sizeOptions(info);
  el.size.replaceChildren(...sizes.map((s) => new Option(`${s} × ${s}${s === info.defaultWidth ? '  (native)' : ''}`, String(s))));
  el.size.value = String(sizes.includes(previous) ? previous : info.defaultWidth);
  delete state.restore.size;
  if (!el.scheduler.dataset.touched && (SCHEDULERS as readonly string[]).includes(info.defaultScheduler)) el.scheduler.value = info.defaultScheduler;
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
  const bundled = document.createElement('optgroup');
  bundled.label = 'In this page (no download)';
  bundled.append(...state.bundled.map((m) => new Option(m.name, m.id)));
  const hub = document.createElement('optgroup');
  hub.label = 'Hugging Face hub (download once, then cached)';
  hub.append(...HUB_PRESETS.map((p) => new Option(`${p.name} · ~${formatBytes(p.approxBytes)}`, `hub:${p.repo}`)));
  const m = state.model;
  if (m?.source.kind === 'hub' && !HUB_PRESETS.some((p) => p.repo === (m.source as { repo: string }).repo)) hub.append(new Option(`${m.source.repo} (hub)`, m.id));
  hub.append(new Option('Other hub model…', HUB_OTHER));
  const opts: (HTMLOptionElement | HTMLOptGroupElement)[] = [placeholder];
  if (state.bundled.length) opts.push(bundled);
  opts.push(hub);
  if (state.local) {
    const local = document.createElement('optgroup');
    local.label = 'From your disk';
    local.append(new Option(`${state.local.name} (local folder)`, LOCAL));
    opts.push(local);
  }
  el.model.replaceChildren(...opts);
  if (state.model) el.model.value = state.model.id;
}

/** Shows what a hub choice would download; nothing is fetched until "Download and load". */
function showHubPanel(value: string) {
  const other = value === HUB_OTHER;
  const preset = HUB_PRESETS.find((p) => `hub:${p.repo}` === value);
  el.hubPanel.hidden = !other && !preset;
  el.hubRepoField.hidden = !other;
  if (preset) {
    el.hubAbout.textContent = `${preset.repo}: ${preset.about} About ${formatBytes(preset.approxBytes)} (fp16 weights) downloaded once from ${new URL(hubEndpoint).host}, then loaded from this browser's cache.`;
  } else if (other) {
    el.hubAbout.textContent = `Any diffusers Stable Diffusion repo with .safetensors weights (SD 1.x / 2.x layout) on ${new URL(hubEndpoint, location.href).host}.`;
    if (state.restore.hubRepo) el.hubRepo.value = state.restore.hubRepo;
  }
}

function onHubDownload() {
  const v = el.model.value;
  const repo = v === HUB_OTHER ? el.hubRepo.value.trim() : v.replace(/^hub:/, '');
  if (!isRepoId(repo)) {
    el.hubRepo.classList.add('invalid');
    showError('Check the model id', 'A hub model id looks like owner/name, e.g. CompVis/stable-diffusion-v1-4.');
    return;
  }
  el.hubRepo.classList.remove('invalid');
  requestLoad(hubSource(repo));
}

function renderDownloads(files: DownloadFile[], offline: boolean) {
  el.downloads.hidden = false;
  el.downloads.replaceChildren(
    ...files.map((f) => {
      const li = document.createElement('li');
      li.className = f.state;
      li.dataset.state = f.state;
      li.dataset.path = f.path;
      const path = document.createElement('span');
      path.className = 'path';
      path.textContent = f.path;
      const meta = document.createElement('span');
      meta.className = 'meta';
      const size = f.size ?? f.loaded;
      const check = f.verified === 'hub' || f.verified === 'pinned' ? ' · SHA-256 ✓' : '';
      const text: Record<DownloadFile['state'], string> = {
        queued: `${formatBytes(size)} · waiting`,
        cached: `${formatBytes(size)} · cached${check}`,
        downloading: `${formatBytes(f.loaded)} / ${formatBytes(size)} · ${formatSpeed(f.bytesPerSec)}${f.resumedFrom ? ` · resumed at ${formatBytes(f.resumedFrom)}` : ''}`,
        verifying: `${formatBytes(size)} · checking SHA-256…`,
        done: `${formatBytes(size)} · done${check}`,
        failed: `${formatBytes(f.loaded)} / ${formatBytes(size)} · stopped`,
      };
      meta.textContent = text[f.state];
      const bar = document.createElement('div');
      bar.className = 'bar';
      const fill = document.createElement('div');
      fill.style.width = `${(fraction(f.loaded, size || 1) * 100).toFixed(1)}%`;
      bar.append(fill);
      li.append(path, meta, bar);
      return li;
    }),
  );
  const total = files.reduce((a, f) => a + (f.size ?? f.loaded), 0);
  const got = files.reduce((a, f) => a + f.loaded, 0);
  const speed = files.find((f) => f.state === 'downloading')?.bytesPerSec ?? 0;
  el.loadFill.style.width = `${(fraction(got, total) * 100).toFixed(1)}%`;
  const done = files.filter((f) => f.state === 'done' || f.state === 'cached').length;
  setStatus(`${offline ? 'Offline: using the cached copy · ' : ''}Downloading · ${done} of ${files.length} files · ${formatBytes(got)} of ${formatBytes(total)}${speed ? ` · ${formatSpeed(speed)}` : ''}`);
}

// ---------------------------------------------------------------- cache inspect / clear

async function refreshCache() {
  if (!(await opfsAvailable())) {
    el.cacheList.replaceChildren();
    el.cacheUsage.textContent = 'This browser offers no private file storage (OPFS): downloads are kept for this visit only.';
    return;
  }
  const store = new OpfsStore();
  const repos = await summarize(store);
  const est = await navigator.storage.estimate?.().catch(() => null);
  el.cacheUsage.textContent = est?.usage !== undefined ? `${formatBytes(est.usage)} used of ${formatBytes(est.quota ?? 0)} allowed` : '';
  if (!repos.length) {
    const li = document.createElement('li');
    li.className = 'hint';
    li.textContent = 'Nothing downloaded yet.';
    el.cacheList.replaceChildren(li);
    return;
  }
  el.cacheList.replaceChildren(
    ...repos.map((r) => {
      const li = document.createElement('li');
      li.dataset.testid = 'cache-row';
      li.setAttribute('data-testid', 'cache-row');
      li.dataset.repo = r.repo;
      const what = document.createElement('span');
      what.className = 'what';
      const partial = r.complete < r.files ? ` · ${r.files - r.complete} partial (resumes)` : '';
      what.textContent = `${r.repo}@${r.revision} · ${formatBytes(r.bytes)} · ${r.complete}/${r.files} files, ${r.verified} SHA-256-verified${partial}`;
      const del = document.createElement('button');
      del.type = 'button';
      del.className = 'link';
      del.textContent = 'Delete';
      del.disabled = state.busy === 'load';
      del.addEventListener('click', async () => {
        await clearCache(store, r.id);
        setStatus(`Deleted ${r.repo} from this browser's cache.`);
        await refreshCache();
      });
      li.append(what, del);
      return li;
    }),
  );
}

// ---------------------------------------------------------------- edits

function isGrid(): boolean {
  return el.viewGrid.checked;
}

function editLabel(e: EditEntry): string {
  const v = variantLabel(e.info);
  if (v) return v;
  const c = e.info.concepts.length ? e.info.concepts.join(', ') : e.info.file;
  return e.info.method && e.info.method !== 'unknown' ? `${e.info.method.toUpperCase()}: ${c}` : c;
}

function download(bytes: Uint8Array, name: string, type: string) {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

function renderEdits() {
  el.editList.replaceChildren(
    ...state.edits.map((e, i) => {
      const li = document.createElement('li');
      li.className = e.enabled ? '' : 'off';
      li.setAttribute('data-testid', 'edit-row');
      li.dataset.id = e.id;
      const sw = document.createElement('label');
      sw.className = 'switch';
      sw.title = e.enabled ? 'On: used for the edited image. Click to turn off' : 'Off. Click to turn on';
      const cb = document.createElement('input');
      cb.type = 'checkbox';
      cb.checked = e.enabled;
      cb.setAttribute('data-testid', `edit-toggle-${i}`);
      cb.setAttribute('aria-label', `Use edit ${editLabel(e)}`);
      cb.addEventListener('change', () => {
        e.enabled = cb.checked;
        renderEdits();
        refreshPanes();
        setStatus(`${editLabel(e)} ${e.enabled ? 'on' : 'off'}: the next generation ${e.enabled ? 'uses' : 'leaves out'} it (no recompute needed).`);
      });
      sw.append(cb, document.createElement('span'));
      const title = document.createElement('span');
      title.className = 'title';
      title.textContent = editLabel(e);
      const actions = document.createElement('span');
      actions.className = 'row-actions';
      const exp = document.createElement('button');
      exp.type = 'button';
      exp.className = 'link';
      exp.textContent = 'Export';
      exp.setAttribute('data-testid', `edit-export-${i}`);
      exp.addEventListener('click', () => download(e.bytes, e.info.file.endsWith('.safetensors') ? e.info.file : `${e.info.file}.safetensors`, 'application/octet-stream'));
      const details = variantDetails(e.info);
      exp.hidden = details ? !details.exportable : false;
      const rm = document.createElement('button');
      rm.type = 'button';
      rm.className = 'link';
      rm.textContent = 'Remove';
      rm.setAttribute('data-testid', `edit-remove-${i}`);
      rm.addEventListener('click', () => {
        state.requestId++;
        send({ type: 'edit-remove', requestId: state.requestId, id: e.id });
        state.edits = state.edits.filter((x) => x !== e);
        renderEdits();
        refreshPanes();
      });
      actions.append(exp, rm);
      const sub = document.createElement('span');
      sub.className = 'sub';
      const layers = e.info.tensors.length;
      sub.textContent =
        details?.sub ??
        `${e.info.file} · ${layers} tensor${layers === 1 ? '' : 's'} (${formatBytes(e.info.values * 4)} f32)${e.info.preserve.length ? ` · preserves ${e.info.preserve.join(', ')}` : ''}`;
      li.append(sw, title, actions, sub);
      if (e.info.warning) {
        const w = document.createElement('span');
        w.className = 'warn';
        w.textContent = `⚠ ${e.info.warning}`;
        li.append(w);
      }
      return li;
    }),
  );
  el.ftField.hidden = !state.edits.some((e) => e.info.kind === 'spm');
  refreshControls();
}

async function addEditFiles(files: File[]) {
  if (!state.model) {
    showError('Load a model first', 'An edit changes a loaded model: choose a model, then add the edit file.');
    return;
  }
  for (const f of files) {
    if (!f.name.endsWith('.safetensors')) {
      showError(
        'Not an edit file',
        `${f.name}: edit, SPM, LoRA and eraser files are .safetensors files (changed UNet tensors, kohya lora_unet_… factors, or a LEACE/INLP eraser's proj_left / proj_right from studio fit-eraser).`,
      );
      continue;
    }
    let bytes: Uint8Array;
    try {
      bytes = new Uint8Array(await f.arrayBuffer());
    } catch (e) {
      showError('Could not read the file', `${f.name}: ${e instanceof Error ? e.message : String(e)}`);
      continue;
    }
    clearError();
    state.busy = 'edit';
    state.requestId++;
    const id = `e${++state.editCounter}`;
    setStatus(`Checking and applying ${f.name}…`);
    refreshControls();
    send({ type: 'edit-add', requestId: state.requestId, id, file: f.name, bytes }, [bytes.buffer]);
    await waitIdle();
  }
}

/** Resolves when the current request is answered (edits are added one at a time). */
function waitIdle(): Promise<void> {
  return new Promise((resolve) => {
    const check = () => (state.busy === null ? resolve() : setTimeout(check, 20));
    check();
  });
}

function onEraseApply() {
  const method = el.eraseMethod.value;
  if (method === 'file') {
    el.editInput.click();
    return;
  }
  if (isFitMethod(method)) {
    const id = `e${++state.editCounter}`;
    if (method === 'ring-a-bell') {
      const r = ringABellRequest(el.eraseConcepts.value, el.eraseParams.value);
      el.eraseConcepts.classList.toggle('invalid', !r.ok && /pair/.test(r.message));
      el.eraseParams.classList.toggle('invalid', !r.ok && !/pair/.test(r.message));
      if (!r.ok) return showError('Check the Ring-A-Bell settings', r.message);
      clearError();
      state.busy = 'edit';
      state.requestId++;
      setStatus('Encoding the Ring-A-Bell prompt pairs…');
      refreshControls();
      send({ type: 'ring-a-bell', requestId: state.requestId, id, request: r.request });
      return;
    }
    const r = eraserRequest(method as EraserMethod, el.eraseConcepts.value, el.eraseOthers.value, el.eraseParams.value);
    el.eraseConcepts.classList.toggle('invalid', !r.ok && /concept prompts/.test(r.message));
    el.eraseOthers.classList.toggle('invalid', !r.ok && /other prompts/.test(r.message));
    el.eraseParams.classList.toggle('invalid', !r.ok && /parameter|iterations|min_accuracy|name=value/.test(r.message));
    if (!r.ok) return showError(`Check the ${method.toUpperCase()} settings`, r.message);
    clearError();
    state.busy = 'edit';
    state.requestId++;
    setStatus(`Fitting ${method.toUpperCase()} from ${r.request.concepts.length} concept and ${r.request.others.length} other prompts…`);
    refreshControls();
    send({ type: 'fit-eraser', requestId: state.requestId, id, request: r.request });
    return;
  }
  if (isSteeringMethod(method)) {
    const r = steeringRequest(method, el.eraseConcepts.value, el.eraseParams.value);
    el.eraseParams.classList.toggle('invalid', !r.ok);
    if (!r.ok) return showError(`Check the ${method.toUpperCase()} settings`, r.message);
    clearError();
    state.busy = 'edit';
    state.requestId++;
    refreshControls();
    send({ type: 'steer', requestId: state.requestId, id: `e${++state.editCounter}`, steering: r.steering });
    return;
  }
  const concepts = splitList(el.eraseConcepts.value);
  if (!concepts.length) {
    el.eraseConcepts.classList.add('invalid');
    showError('Name a concept', 'Type the concept(s) to erase, separated by ";" (e.g. "skull; pirate flag").');
    return;
  }
  el.eraseConcepts.classList.remove('invalid');
  const params = parseParams(el.eraseParams.value);
  if (!params.ok) {
    el.eraseParams.classList.add('invalid');
    showError('Check the hyper-parameters', params.message);
    return;
  }
  el.eraseParams.classList.remove('invalid');
  clearError();
  state.busy = 'edit';
  state.requestId++;
  setStatus(`Computing ${method.toUpperCase()} for ${concepts.join(', ')}…`);
  refreshControls();
  send({
    type: 'erase',
    requestId: state.requestId,
    id: `e${++state.editCounter}`,
    method: method as EraseMethod,
    concepts,
    guides: splitList(el.eraseGuides.value),
    preserve: splitList(el.erasePreserve.value),
    params: params.params,
  });
}

/** The erase panel's fields per method: labels, placeholders, which inputs show, the button. */
const FORM: Record<string, { concepts: string; conceptsHint: string; params: string; others?: boolean; button: string }> = {
  sld: { concepts: 'Safety concept <em>one text</em>', conceptsHint: '(empty: the official unsafe-concept list)', params: 'preset=medium (weak, medium, strong, max)', button: 'Add SLD variant' },
  safree: { concepts: 'Keywords <em>to steer away from, ; separated</em>', conceptsHint: 'skull; pirate flag', params: 'alpha=0.01, all_steps=false, artist=false', button: 'Add SAFREE variant' },
  leace: { concepts: 'Concept prompts <em>with the concept, ; separated</em>', conceptsHint: 'a skull; a photo of a skull; a big skull', params: '(none: LEACE is closed-form)', others: true, button: 'Fit LEACE eraser' },
  inlp: { concepts: 'Concept prompts <em>with the concept, ; separated</em>', conceptsHint: 'a skull; a photo of a skull; a big skull', params: 'iterations=10, min_accuracy=0.55', others: true, button: 'Fit INLP eraser' },
  'ring-a-bell': { concepts: 'Prompt pairs <em>with the concept|without, ; separated</em>', conceptsHint: 'a skull|a star; a photo of a skull|a photo of a star', params: 'eta=3 (RECE: 3 nudity, 0.9 Van Gogh)', button: 'Add Ring-A-Bell probe' },
};

function refreshEraseForm() {
  const method = el.eraseMethod.value;
  const file = method === 'file';
  const f = FORM[method];
  el.eraseExtra.hidden = file;
  for (const i of [el.eraseGuides, el.erasePreserve]) (i.closest('label') as HTMLElement).hidden = !!f;
  (el.eraseOthers.closest('label') as HTMLElement).hidden = !f?.others;
  el.eraseConcepts.placeholder = f?.conceptsHint ?? 'skull; pirate flag';
  $('erase-concepts-label').innerHTML = f?.concepts ?? 'Concepts <em>; separated</em>';
  el.eraseParams.placeholder = f?.params ?? 'lamb=0.5, erase_scale=1';
  el.eraseApply.textContent = file ? 'Choose edit, SPM, LoRA or eraser file…' : (f?.button ?? `Erase with ${method.toUpperCase()}`);
}

// ---------------------------------------------------------------- generation

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

function refreshPanes() {
  const showEdited = !isGrid() && (enabledEdits().length > 0 || state.lastHadEdited);
  el.panes.hidden = isGrid();
  el.grid.hidden = !isGrid();
  el.gridField.hidden = !isGrid();
  el.paneEdited.hidden = !showEdited;
  el.paneDiff.hidden = !showEdited || !state.results.edited || !state.results.original;
  el.panes.classList.toggle('single', !showEdited);
}

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
      const canvas = document.createElement('canvas');
      cell.append(canvas);
      cells.push(cell);
    });
  });
  el.grid.replaceChildren(...cells);
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
  const params: GenerateParams = { ...checked.params, previewEvery: Number(el.previewEvery.value) || 0 };
  const enabled = enabledEdits();
  const jobs: Job[] = [];
  if (isGrid()) {
    const prompts = el.gridPrompts.value
      .split('\n')
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .slice(0, 12);
    if (!prompts.length) {
      showError('Add grid prompts', 'Type one prompt per line: the erased concept first, then neighbouring concepts that must stay.');
      return;
    }
    const variants = gridVariants(enabled.map((e) => ({ id: e.id, label: editLabel(e) })));
    state.gridVariants = variants;
    buildGrid(prompts, variants);
    prompts.forEach((prompt, row) => variants.forEach((v, col) => jobs.push({ params: { ...params, prompt }, edits: v.edits, target: { kind: 'grid', row, col } })));
  } else {
    jobs.push({ params, edits: [], target: { kind: 'original' } });
    if (enabled.length) jobs.push({ params, edits: enabled.map((e) => e.id), target: { kind: 'edited' } });
    state.lastHadEdited = enabled.length > 0;
    state.results = { original: null, edited: null };
    el.diffStats.textContent = '';
    refreshPanes();
  }
  clearError();
  state.jobs = jobs;
  state.runCount = jobs.length;
  state.runStart = performance.now();
  state.busy = 'generate';
  refreshControls();
  runNext();
}

function jobLabel(j: Job): string {
  if (j.target.kind === 'original') return state.runCount > 1 ? 'original' : '';
  if (j.target.kind === 'edited') return 'edited';
  return `cell ${j.target.row + 1}×${j.target.col + 1}`;
}

function runNext() {
  const job = state.jobs.shift();
  state.current = job ?? null;
  if (!job) {
    state.busy = null;
    refreshControls();
    return;
  }
  state.requestId++;
  el.progress.value = 0;
  const which = jobLabel(job);
  const n = state.runCount - state.jobs.length;
  el.progressText.textContent = state.runCount > 1 ? `Run ${n} / ${state.runCount}` : 'Encoding prompt…';
  setStatus(`${which ? `Generating the ${which} image (${n} of ${state.runCount}): ` : ''}encoding the prompt…`);
  send({ type: 'generate', requestId: state.requestId, params: job.params, edits: job.edits, ft: el.ft.checked });
}

function targetCanvas(t: Target): HTMLCanvasElement | null {
  if (t.kind === 'original') return el.canvas;
  if (t.kind === 'edited') return el.canvasEdited;
  return el.grid.querySelector<HTMLCanvasElement>(`[data-testid="grid-cell-${t.row}-${t.col}"] canvas`);
}

function paint(c: HTMLCanvasElement, width: number, height: number, rgba: Uint8ClampedArray): boolean {
  c.width = width;
  c.height = height;
  const ctx = c.getContext('2d');
  if (!ctx) {
    showError('Cannot show the image', 'this browser gave no 2D canvas context');
    return false;
  }
  ctx.putImageData(new ImageData(new Uint8ClampedArray(rgba), width, height), 0, 0);
  c.classList.toggle('pixelated', width < 256);
  c.hidden = false;
  return true;
}

function showPreview(m: Extract<FromWorker, { status: 'preview' }>) {
  const job = state.current;
  if (!job) return;
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
  const list = ids.map((id) => state.edits.find((e) => e.id === id)).filter((e): e is EditEntry => !!e);
  return JSON.stringify(list.map((e) => ({ file: e.info.file, method: e.info.method, concepts: e.info.concepts, tensors: e.info.tensors.length })));
}

/** A PNG of `c` with the generation parameters in its text chunks, on the link `a`. */
function attachPng(c: HTMLCanvasElement, a: HTMLAnchorElement, r: Result, name: string) {
  c.toBlob(async (blob) => {
    if (!blob) return;
    const p = r.params;
    const model = state.model?.name ?? '';
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

function onImage(m: Extract<FromWorker, { status: 'image' }>) {
  const job = state.current;
  if (!job) return;
  const c = targetCanvas(job.target);
  const r: Result = { width: m.width, height: m.height, rgba: m.rgba, params: m.params, edits: m.edits, requestId: m.requestId };
  if (c && paint(c, m.width, m.height, m.rgba)) {
    c.classList.remove('preview');
    delete c.dataset.previewStep;
    c.dataset.seed = String(m.params.seed);
    c.dataset.backend = m.backend;
    c.dataset.requestId = String(m.requestId);
    c.dataset.edits = m.edits.join(',');
  }
  const seedTag = `${m.params.seed}`;
  if (job.target.kind === 'original') {
    state.results.original = r;
    el.placeholder.hidden = true;
    el.noteOriginal.textContent = `${formatMs(m.timing.totalMs)}`;
    attachPng(el.canvas, el.downloadOriginal, r, `erasure-studio-${seedTag}-original.png`);
  } else if (job.target.kind === 'edited') {
    state.results.edited = r;
    el.placeholderEdited.hidden = true;
    el.noteEdited.textContent = `${m.edits.length} edit${m.edits.length === 1 ? '' : 's'} · ${formatMs(m.timing.totalMs)}${permeabilityNote(m.permeabilities, el.ft.checked)}`;
    attachPng(el.canvasEdited, el.downloadEdited, r, `erasure-studio-${seedTag}-edited.png`);
    showDiff();
  } else {
    c?.parentElement?.classList.remove('pending');
    if (c) c.title = `${m.params.prompt} · ${state.gridVariants[job.target.col]?.label ?? ''}`;
  }
  el.progress.value = 1;
  showMeta(m);
  if (!state.jobs.length) {
    const first = state.firstImage ? '' : `, first image ${formatMs(performance.now() - state.t0)} after page load`;
    state.firstImage = true;
    const truncated = m.promptTruncated ? ' The prompt was longer than 77 tokens and was cut.' : '';
    const steered = m.steering ? ` ${m.steering}.` : '';
    const all = state.runCount > 1 ? `${state.runCount} images in ${formatMs(performance.now() - state.runStart)}` : `Done in ${formatMs(m.timing.totalMs)}`;
    el.progressText.textContent = `Done · ${m.params.steps} steps`;
    setStatus(`${all} (${formatMs(m.timing.perStepMs)} per step${first}).${truncated}${steered}`);
  }
  runNext();
}

function showDiff() {
  const a = state.results.original;
  const b = state.results.edited;
  if (!a || !b || a.width !== b.width || a.height !== b.height) return;
  const d = diffHeatmap(a.rgba, b.rgba, a.width, a.height);
  paint(el.canvasDiff, a.width, a.height, d.rgba);
  el.canvasDiff.dataset.mean = d.mean.toFixed(3);
  el.diffStats.textContent = `mean |Δ| ${d.mean.toFixed(1)} / 255 · ${(d.changed * 100).toFixed(0)}% changed · white = ${Math.round(d.scale)}`;
  el.diffStats.title = 'Per pixel, the mean absolute difference over R, G, B; "changed": more than 8 / 255; white: the largest difference';
  el.paneDiff.hidden = false;
}

function showMeta(m: Extract<FromWorker, { status: 'image' }>) {
  const p = m.params;
  el.caption.replaceChildren();
  const strong = document.createElement('span');
  strong.className = 'p';
  strong.textContent = isGrid() ? `Grid of ${state.runCount} images` : p.prompt || '(empty prompt)';
  el.caption.append(strong);
  if (p.negativePrompt && !isGrid()) {
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

// ---------------------------------------------------------------- worker messages

function engineLabel(m: Extract<FromWorker, { status: 'ready' }>) {
  return m.backend === 'webgpu' ? `WebGPU · ${m.adapter}${m.precision === 'f16' ? ' · f16' : ''}` : `CPU${m.fallbackReason ? ' (WebGPU unavailable)' : ''}`;
}

function onWorker(data: unknown) {
  if (!isFromWorker(data)) {
    console.warn('unexpected message from the worker', data);
    return;
  }
  const m = data;
  // The last messages without pixels, for tests and for looking at per-step timings in devtools.
  if (m.status !== 'image' && m.status !== 'preview' && m.status !== 'edit') events.push(m);
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
    case 'download': {
      if (m.requestId !== state.requestId) return;
      renderDownloads(m.files, m.offline);
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
      state.model = source ? { name: m.name, id: sourceId(source), info: m.info, source } : null;
      state.edits = [];
      state.lastHadEdited = false;
      renderEdits();
      refreshPanes();
      el.loadBar.hidden = true;
      el.hubPanel.hidden = true;
      fillModelSelect();
      applyModelInfo(m.info);
      if (!el.gridPrompts.dataset.touched) el.gridPrompts.value = defaultGridPrompts(state.model?.id ?? null, splitList(el.eraseConcepts.value)).join('\n');
      const about =
        source?.kind === 'url' ? state.bundled.find((b) => b.id === source.id)?.description : source?.kind === 'hub' ? `${source.repo} from the hub cache.` : 'From a local folder.';
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
      const n = state.runCount - state.jobs.length;
      const which = state.current ? jobLabel(state.current) : '';
      el.progressText.textContent = state.runCount > 1 ? `Run ${n}/${state.runCount} · step ${m.step}/${m.total}` : `Step ${m.step} / ${m.total}`;
      setStatus(`${which ? `${which[0].toUpperCase()}${which.slice(1)}: ` : ''}step ${m.step} of ${m.total} · ${formatMs(m.stepMs)} per step · ${formatMs(m.elapsedMs)} so far`);
      return;
    }
    case 'preview': {
      if (m.requestId !== state.requestId) return;
      previews.push(m.step);
      showPreview(m);
      return;
    }
    case 'image': {
      if (m.requestId !== state.requestId) return;
      timings.push(m.timing);
      firstImageAt ??= performance.now();
      onImage(m);
      return;
    }
    case 'cancelled': {
      if (m.requestId !== state.requestId) return;
      state.busy = null;
      state.jobs = [];
      state.current = null;
      el.progressText.textContent = `Cancelled at ${m.step} / ${m.total}`;
      setStatus(`Cancelled after step ${m.step} of ${m.total}. Ready.`);
      refreshControls();
      return;
    }
    case 'edit': {
      if (m.requestId !== state.requestId) return;
      state.busy = null;
      state.edits.push({ id: m.edit.id, info: m.edit, bytes: m.bytes, enabled: true });
      // The grid starts from the newly erased concept(s) unless the user wrote their own prompts.
      if (!el.gridPrompts.dataset.touched && m.edit.concepts.length) el.gridPrompts.value = defaultGridPrompts(state.model?.id ?? null, m.edit.concepts).join('\n');
      el.eraseTime.textContent =
        m.edit.kind === 'sld' || m.edit.kind === 'safree'
          ? `${m.edit.kind.toUpperCase()} added`
          : m.computed
            ? `${kindName(m.edit)} ${isFitMethod(m.edit.kind ?? '') ? 'fitted' : 'computed'} in ${formatMs(m.ms)}`
            : `applied in ${formatMs(m.ms)}`;
      el.eraseTime.setAttribute('data-testid', 'erase-time');
      renderEdits();
      refreshPanes();
      setStatus(
        addedStatus(m.edit) ??
          `${m.computed ? 'Computed' : 'Added'} ${m.edit.file}: ${m.edit.tensors.length} tensor(s) changed, on for the next generation${m.edit.warning ? ' (see the warning)' : ''}.`,
      );
      refreshControls();
      return;
    }
    case 'edit-removed':
      return;
    case 'disposed':
      return;
    case 'error': {
      const titles = {
        init: 'The engine could not start',
        load: 'The model could not be loaded',
        generate: 'Generation failed',
        edit: 'The file was not applied',
        erase: 'Erasure failed',
      };
      showError(titles[m.phase], m.message);
      if (m.phase === 'load') {
        el.loadBar.hidden = true;
        // A load that failed before the engine dropped the previous model (reading files, a
        // hub download) keeps it.
        if (m.modelDropped !== false) {
          state.model = null;
          state.edits = [];
          renderEdits();
          el.modelMeta.textContent = 'No model loaded: pick another model or folder.';
          el.model.value = '';
        } else if (state.model) {
          el.modelMeta.textContent = `${state.model.name} is still loaded.`;
        }
        state.pendingLoad = null;
      }
      if (m.phase === 'init') {
        state.engine = 'failed';
        el.engineDot.className = 'dot bad';
        el.engineText.textContent = 'Engine failed';
      }
      state.busy = null;
      state.jobs = [];
      state.current = null;
      el.progressText.textContent = '';
      const after: Record<string, string> = {
        generate: 'Generation failed; the model is still loaded.',
        edit: 'The file was not applied; the model is unchanged.',
        erase: 'Nothing was erased; the model is unchanged.',
      };
      setStatus(after[m.phase] ?? 'Failed: see the message above.');
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

// ---------------------------------------------------------------- local folders, drag and drop

function loadLocal(entries: { path: string; item: File }[]) {
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
  el.hubPanel.hidden = true;
  requestLoad(state.local);
}

function onFolderPicked() {
  const list = Array.from(el.folderInput.files ?? []);
  el.folderInput.value = '';
  if (!list.length) return;
  loadLocal(list.map((f) => ({ path: f.webkitRelativePath || f.name, item: f })));
}

/** Every file below a dropped directory entry, with its path. */
async function walkEntry(entry: FileSystemEntry, prefix: string, out: { path: string; item: File }[]) {
  if (entry.isFile) {
    const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
    out.push({ path: `${prefix}${entry.name}`, item: file });
  } else if (entry.isDirectory) {
    const reader = (entry as FileSystemDirectoryEntry).createReader();
    for (;;) {
      const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
      if (!batch.length) break;
      for (const e of batch) await walkEntry(e, `${prefix}${entry.name}/`, out);
    }
  }
}

async function onDrop(ev: DragEvent) {
  ev.preventDefault();
  el.dropOverlay.hidden = true;
  el.editDrop.classList.remove('over');
  const dt = ev.dataTransfer;
  if (!dt) return;
  const entries = Array.from(dt.items ?? [])
    .map((i) => (i.kind === 'file' ? i.webkitGetAsEntry?.() : null))
    .filter((e): e is FileSystemEntry => !!e);
  if (entries.some((e) => e.isDirectory)) {
    if (state.busy || state.engine !== 'ready') return;
    const files: { path: string; item: File }[] = [];
    try {
      for (const e of entries) await walkEntry(e, '', files);
    } catch (e) {
      showError('Could not read the dropped folder', e instanceof Error ? e.message : String(e));
      return;
    }
    if (files.length) loadLocal(files);
    return;
  }
  const files = Array.from(dt.files ?? []);
  if (files.length) await addEditFiles(files);
}

// ---------------------------------------------------------------- share

function currentShare(): Shared {
  const v = formValues();
  const modelId = state.model?.id ?? el.model.value;
  return {
    model: modelId === LOCAL ? undefined : modelId || undefined,
    hubRepo: modelId === HUB_OTHER ? el.hubRepo.value.trim() : state.model?.source.kind === 'hub' && !HUB_PRESETS.some((p) => `hub:${p.repo}` === modelId) ? state.model.source.repo : undefined,
    prompt: v.prompt,
    negativePrompt: v.negativePrompt,
    seed: Number(v.seed),
    steps: Number(v.steps),
    guidance: Number(v.guidance),
    size: Number(v.size),
    scheduler: v.scheduler as Shared['scheduler'],
    previewEvery: Number(el.previewEvery.value),
    view: isGrid() ? 'grid' : 'side',
    gridPrompts: isGrid() ? el.gridPrompts.value.split('\n').filter((x) => x.trim()) : undefined,
    eraseMethod: el.eraseMethod.value,
    concepts: el.eraseConcepts.value,
    guides: el.eraseGuides.value,
    preserve: el.erasePreserve.value,
    others: el.eraseOthers.value,
    eraseParams: el.eraseParams.value,
    edits: enabledEdits().map((e) => e.info.file),
  };
}

async function onShare() {
  const url = `${location.origin}${location.pathname}${location.search}${toHash(currentShare())}`;
  history.replaceState(null, '', url);
  el.shareUrl.value = url;
  el.shareUrl.hidden = false;
  el.shareUrl.select();
  try {
    await navigator.clipboard.writeText(url);
    setStatus('Share link copied: it holds every setting (no images, no files).');
  } catch {
    setStatus('Share link ready below: copy it (it holds every setting, no images, no files).');
  }
}

/** Fills the form from the URL hash (the model is chosen when the model list arrives). */
function applyShared(s: Shared) {
  if (s.prompt !== undefined) el.prompt.value = s.prompt;
  if (s.negativePrompt !== undefined) el.negative.value = s.negativePrompt;
  if (s.seed !== undefined) el.seed.value = String(s.seed);
  if (s.steps !== undefined) el.steps.value = String(s.steps);
  if (s.guidance !== undefined) el.guidance.value = String(s.guidance);
  if (s.scheduler) {
    el.scheduler.value = s.scheduler;
    el.scheduler.dataset.touched = '1';
  }
  if (s.previewEvery !== undefined && [...el.previewEvery.options].some((o) => o.value === String(s.previewEvery))) el.previewEvery.value = String(s.previewEvery);
  if (s.view === 'grid') el.viewGrid.checked = true;
  if (s.gridPrompts?.length) {
    el.gridPrompts.value = s.gridPrompts.join('\n');
    el.gridPrompts.dataset.touched = '1';
  }
  if (s.eraseMethod && ['file', ...ERASE_METHODS, ...STEERING_METHODS, ...FIT_METHODS].includes(s.eraseMethod)) el.eraseMethod.value = s.eraseMethod;
  if (s.concepts !== undefined) el.eraseConcepts.value = s.concepts;
  if (s.guides !== undefined) el.eraseGuides.value = s.guides;
  if (s.preserve !== undefined) el.erasePreserve.value = s.preserve;
  if (s.others !== undefined) el.eraseOthers.value = s.others;
  if (s.eraseParams !== undefined) el.eraseParams.value = s.eraseParams;
  if (s.edits?.length) {
    el.eraseTime.textContent = `this link used: ${s.edits.join(', ')}, add ${s.edits.length === 1 ? 'it' : 'them'} to reproduce`;
    el.eraseTime.setAttribute('data-testid', 'edits-needed');
  }
}

// ---------------------------------------------------------------- start

declare global {
  interface Window {
    __studio?: {
      ready(): boolean;
      busy(): string | null;
      events: FromWorker[];
      /** Steps at which previews arrived (all runs). */
      previews: number[];
      /** Timings of every finished image, in order (benchmarks read them). */
      timings: { totalMs: number; perStepMs: number; stepsMs: number; decodeMs: number }[];
      /** performance.now() when the first image arrived. */
      firstImageAt: number | null;
      edits(): { id: string; enabled: boolean; file: string }[];
    };
  }
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
  applyShared(shared);
  refreshEraseForm();

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
    state.jobs = [];
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
    showHubPanel(v);
    if (v === LOCAL && state.local) requestLoad(state.local);
    const b = state.bundled.find((m) => m.id === v);
    if (b) requestLoad(bundledSource(b));
  });
  el.hubDownload.addEventListener('click', onHubDownload);
  el.hubRepo.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') onHubDownload();
  });
  el.cacheOpen.addEventListener('click', () => {
    el.cachePanel.hidden = !el.cachePanel.hidden;
    if (!el.cachePanel.hidden) void refreshCache();
  });
  el.cacheClose.addEventListener('click', () => (el.cachePanel.hidden = true));
  el.cacheClear.addEventListener('click', async () => {
    if (!(await opfsAvailable())) return;
    const n = await clearCache(new OpfsStore(), null);
    setStatus(`Deleted ${n} cached file${n === 1 ? '' : 's'}.`);
    await refreshCache();
  });
  el.backend.addEventListener('change', () => {
    state.backendChoice = backendChoice(el.backend.value);
    clearError(true);
    const src = state.model?.source ?? state.pendingLoad;
    state.model = null;
    state.edits = [];
    renderEdits();
    state.pendingSource = src;
    startWorker();
  });
  el.eraseMethod.addEventListener('change', refreshEraseForm);
  el.eraseApply.addEventListener('click', onEraseApply);
  el.editInput.addEventListener('change', () => {
    const files = Array.from(el.editInput.files ?? []);
    el.editInput.value = '';
    void addEditFiles(files);
  });
  for (const r of [el.viewSide, el.viewGrid])
    r.addEventListener('change', () => {
      refreshPanes();
      refreshControls();
    });
  el.gridPrompts.addEventListener('input', () => (el.gridPrompts.dataset.touched = '1'));
  el.share.addEventListener('click', () => void onShare());
  let dragDepth = 0;
  window.addEventListener('dragenter', (e) => {
    if (!e.dataTransfer?.types.includes('Files')) return;
    dragDepth++;
    el.dropOverlay.hidden = false;
  });
  window.addEventListener('dragleave', () => {
    dragDepth = Math.max(0, dragDepth - 1);
    if (!dragDepth) {
      el.dropOverlay.hidden = true;
      el.editDrop.classList.remove('over');
    }
  });
  window.addEventListener('dragover', (e) => {
    e.preventDefault();
    el.editDrop.classList.add('over');
  });
  window.addEventListener('drop', (e) => {
    dragDepth = 0;
    void onDrop(e);
  });

  window.__studio = {
    ready: () => state.engine === 'ready' && state.busy === null && state.model !== null,
    busy: () => state.busy,
    events,
    previews,
    timings,
    get firstImageAt() {
      return firstImageAt;
    },
    edits: () => state.edits.map((e) => ({ id: e.id, enabled: e.enabled, file: e.info.file })),
  };
  refreshPanes();
  refreshControls();
  startWorker();
  void fetchIndex().then((models) => {
    state.bundled = models;
    fillModelSelect();
    const want = shared.model ?? settings.model;
    if (want?.startsWith('hub:')) {
      // A shared hub model is offered, not downloaded unasked.
      el.model.value = want === HUB_OTHER || !HUB_PRESETS.some((p) => `hub:${p.repo}` === want) ? HUB_OTHER : want;
      if (el.model.value === HUB_OTHER && !shared.hubRepo && want !== HUB_OTHER) el.hubRepo.value = want.slice(4);
      showHubPanel(el.model.value);
      el.modelMeta.textContent = 'This link uses a hub model: press "Download and load".';
      return;
    }
    const wanted = models.find((m) => m.id === want) ?? models.find((m) => m.id === 'classroom') ?? models[0];
    if (wanted) {
      el.model.value = wanted.id;
      requestLoad(bundledSource(wanted));
    } else {
      el.modelMeta.textContent = 'No bundled model here: choose a hub model or open a diffusers model folder from your disk.';
    }
  });
}

init();
