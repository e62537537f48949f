// The Model card and the header's engine indicator: the device select (a new engine), the model
// select (bundled models, hub presets, a local folder), the hub panel and its download list,
// and loading a model through the engine.

import type { DownloadFile, ModelInfo, ModelSource } from '../../protocol';
import { missingMessage, selectModelFiles } from '../../model-files';
import { HUB_PRESETS, isRepoId } from '../../hub/presets';
import { backendChoice, formatBytes, formatMs, formatSpeed, fraction } from '../logic';
import type { Shared } from '../share';
import { failureTitle, type Ctx } from '../context';
import type { EngineEvent, ErrorMsg, LoadedMsg, ReadyMsg, Streamed } from '../engine-client';
import type { BundledModel } from '../store';
import { byId, clearError, markInvalid, setStatus, showError } from '../dom';

/** The model select's value for the local folder. */
const LOCAL = '__local__';
const HUB_OTHER = 'hub:other';

export interface ModelPickerDeps {
  /** A model finished loading (the generate form adapts its sizes and defaults). */
  onLoaded(info: ModelInfo): void;
  /** A load failed: true when it was a recovery's (which then ends; web/ui/recovery.ts). */
  recoveryLoadFailed(): boolean;
}

export function createModelPicker(ctx: Ctx, deps: ModelPickerDeps) {
  const { store, engine } = ctx;
  const el = {
    engineDot: byId('engine-dot'),
    engineText: byId('engine-text'),
    backend: byId<HTMLSelectElement>('backend'),
    model: byId<HTMLSelectElement>('model-select'),
    openFolder: byId<HTMLButtonElement>('open-folder'),
    folderInput: byId<HTMLInputElement>('folder-input'),
    modelMeta: byId('model-meta'),
    loadBar: byId('load-bar'),
    loadFill: byId('load-fill'),
    hubPanel: byId('hub-panel'),
    hubAbout: byId('hub-about'),
    hubRepoField: byId('hub-repo-field'),
    hubRepo: byId<HTMLInputElement>('hub-repo'),
    hubDownload: byId<HTMLButtonElement>('hub-download'),
    downloads: byId<HTMLUListElement>('download-list'),
  };

  function sourceId(source: ModelSource): string {
    return source.kind === 'local' ? LOCAL : source.id;
  }

  function hubSource(repo: string): ModelSource {
    const preset = HUB_PRESETS.find((p) => p.repo === repo);
    return { kind: 'hub', id: `hub:${repo}`, name: preset?.name ?? repo, endpoint: ctx.hubEndpoint, repo, revision: preset?.revision ?? 'main', pinned: preset?.pinned };
  }

  function bundledSource(m: BundledModel): ModelSource {
    return { kind: 'url', id: m.id, name: m.name, base: new URL(`models/${m.id}/`, location.href).href, files: m.files };
  }

  function fillModelSelect() {
    const s = store.state;
    const placeholder = new Option('Choose a model…', '');
    placeholder.disabled = true;
    const bundled = document.createElement('optgroup');
    bundled.label = 'In this page (no download)';
    bundled.append(...s.bundled.map((m) => new Option(m.name, m.id)));
    const hub = document.createElement('optgroup');
    hub.label = 'Hugging Face hub (download once, then cached)';
    hub.append(...HUB_PRESETS.map((p) => new Option(`${p.name} · ~${formatBytes(p.approxBytes)}`, `hub:${p.repo}`)));
    const m = s.model;
    if (m?.source.kind === 'hub' && !HUB_PRESETS.some((p) => p.repo === (m.source as { repo: string }).repo)) hub.append(new Option(`${m.source.repo} (hub)`, m.id));
    hub.append(new Option('Other hub model…', HUB_OTHER));
    const opts: (HTMLOptionElement | HTMLOptGroupElement)[] = [placeholder];
    if (s.bundled.length) opts.push(bundled);
    opts.push(hub);
    if (s.local) {
      const local = document.createElement('optgroup');
      local.label = 'From your disk';
      local.append(new Option(`${s.local.name} (local folder)`, LOCAL));
      opts.push(local);
    }
    el.model.replaceChildren(...opts);
    if (s.model) el.model.value = s.model.id;
  }

  /** Shows what a hub choice would download; nothing is fetched until "Download and load". */
  function showHubPanel(value: string) {
    const other = value === HUB_OTHER;
    const preset = HUB_PRESETS.find((p) => `hub:${p.repo}` === value);
    el.hubPanel.hidden = !other && !preset;
    el.hubRepoField.hidden = !other;
    if (preset) {
      el.hubAbout.textContent = `${preset.repo}: ${preset.about} About ${formatBytes(preset.approxBytes)} (fp16 weights) downloaded once from ${new URL(ctx.hubEndpoint).host}, then loaded from this browser's cache.`;
    } else if (other) {
      el.hubAbout.textContent = `Any diffusers Stable Diffusion repo with .safetensors weights (SD 1.x / 2.x layout) on ${new URL(ctx.hubEndpoint, location.href).host}.`;
      if (store.state.restore.hubRepo) el.hubRepo.value = store.state.restore.hubRepo;
    }
  }

  function onHubDownload() {
    const v = el.model.value;
    const repo = v === HUB_OTHER ? el.hubRepo.value.trim() : v.replace(/^hub:/, '');
    const ok = isRepoId(repo);
    markInvalid(el.hubRepo, !ok);
    if (!ok) return showError('Check the model id', 'A hub model id looks like owner/name, e.g. CompVis/stable-diffusion-v1-4.');
    requestLoad(hubSource(repo));
  }

  function renderDownloads(files: DownloadFile[], offline: boolean) {
    el.downloads.hidden = false;
    el.downloads.replaceChildren(...files.map(downloadRow));
    const total = files.reduce((a, f) => a + (f.size ?? f.loaded), 0);
    const got = files.reduce((a, f) => a + f.loaded, 0);
    const speed = files.find((f) => f.state === 'downloading')?.bytesPerSec ?? 0;
    el.loadFill.style.width = `${(fraction(got, total) * 100).toFixed(1)}%`;
    const done = files.filter((f) => f.state === 'done' || f.state === 'cached').length;
    setStatus(`${offline ? 'Offline: using the cached copy · ' : ''}Downloading · ${done} of ${files.length} files · ${formatBytes(got)} of ${formatBytes(total)}${speed ? ` · ${formatSpeed(speed)}` : ''}`);
  }

  function onLoadProgress(m: Streamed) {
    if (m.status === 'download') return renderDownloads(m.files, m.offline);
    if (m.status !== 'loading') return;
    const f = fraction(m.loaded, m.total);
    el.loadFill.style.width = `${(f * 100).toFixed(1)}%`;
    const what = m.file ? ` · ${m.file}` : '';
    setStatus(`Loading model${what} · ${Math.round(f * 100)}% (${formatBytes(m.loaded)} of ${formatBytes(m.total)})`);
  }

  /** Loads `source` (once the engine is ready). */
  function requestLoad(source: ModelSource) {
    store.update((s) => (s.pendingLoad = source));
    void load(source);
  }

  async function load(source: ModelSource) {
    if (store.state.engine.status !== 'ready') {
      store.update((s) => (s.pendingSource = source));
      return;
    }
    clearError();
    el.loadBar.hidden = false;
    el.loadFill.style.width = '0%';
    el.downloads.hidden = source.kind !== 'hub';
    el.downloads.replaceChildren();
    const doing = `${source.kind === 'hub' ? 'Fetching' : 'Loading'} ${source.name}…`;
    el.modelMeta.textContent = doing;
    setStatus(doing);
    store.update((s) => (s.busy = 'load'));
    const m = await engine.request({ type: 'load', source }, onLoadProgress);
    if (m === null) return;
    if (m.status === 'error') return loadFailed(m);
    loaded(m, source);
  }

  function loaded(m: LoadedMsg, source: ModelSource) {
    store.update((s) => {
      s.busy = null;
      s.pendingLoad = null;
      s.model = { name: m.name, id: sourceId(source), info: m.info, source };
      s.edits = [];
      s.lastHadEdited = false;
    });
    el.loadBar.hidden = true;
    el.hubPanel.hidden = true;
    fillModelSelect();
    const about =
      source.kind === 'url' ? store.state.bundled.find((b) => b.id === source.id)?.description : source.kind === 'hub' ? `${source.repo} from the hub cache.` : 'From a local folder.';
    el.modelMeta.textContent =
      `${about ? `${about} ` : ''}${formatBytes(m.bytes)} · ${m.info.defaultWidth}×${m.info.defaultHeight} px · ` +
      `text ${m.info.textWidth}-d × ${m.info.textLayers} layers · loaded in ${formatMs(m.ms)}`;
    setStatus(`Ready: ${m.name} on ${store.state.engine.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}. Type a prompt and press Generate.`);
    // Last: a recovery with no entries to add again says "Recovered" at once, after this status.
    deps.onLoaded(m.info);
  }

  function loadFailed(m: ErrorMsg) {
    el.loadBar.hidden = true;
    // A load that failed before the engine dropped the previous model (reading files, a hub
    // download, a folder whose configs or headers are wrong) keeps it.
    const dropped = m.modelDropped !== false;
    const kept = store.state.model;
    if (dropped && kept && !deps.recoveryLoadFailed() && !m.fatal) {
      // It failed while reading weights, after the engine had let the previous model go: a fresh
      // engine loads that one again, with its entries.
      const n = store.state.edits.length;
      store.update((s) => {
        s.busy = null;
        s.pendingLoad = null;
      });
      ctx.recover(
        failureTitle('load'),
        `${m.message}\n\n${kept.name} is being loaded again${n ? `, with its ${n} entr${n === 1 ? 'y' : 'ies'}` : ''}.`,
        { source: kept.source, name: kept.name, entries: store.state.edits },
      );
      el.model.value = kept.id;
      return;
    }
    store.update((s) => {
      if (dropped) {
        s.model = null;
        s.edits = [];
      }
      s.pendingLoad = null;
    });
    if (dropped) {
      el.modelMeta.textContent = 'No model loaded: pick another model or folder.';
      el.model.value = '';
    } else if (kept) {
      el.modelMeta.textContent = `${kept.name} is still loaded.`;
    }
    ctx.failed(m);
  }

  function loadLocal(entries: { path: string; item: File }[]) {
    const sel = selectModelFiles(entries);
    const folder = (entries[0].path.split('/')[0] || 'folder').trim();
    if (sel.missing.length) {
      showError('This folder is not a complete model', missingMessage(sel.missing, sel.files.map((f) => f.path)));
      setStatus('Pick a diffusers model folder (with unet/, vae/, text_encoder/, scheduler/).');
      return;
    }
    const local: ModelSource = { kind: 'local', name: folder, files: sel.files.map((f) => ({ path: f.path, file: f.item })) };
    store.update((s) => (s.local = local));
    fillModelSelect();
    el.model.value = LOCAL;
    el.hubPanel.hidden = true;
    requestLoad(local);
  }

  function engineLabel(m: ReadyMsg) {
    if (m.backend === 'webgpu') return `WebGPU · ${m.adapter}${m.precision === 'f16' ? ' · f16' : ''}`;
    return `CPU${m.skippedAdapter ? ' (faster than the software WebGPU adapter)' : m.fallbackReason ? ' (WebGPU unavailable)' : ''}`;
  }

  /** What the engine says unasked: ready (then the pending model loads), crashed, failed to start. */
  function onEngine(e: EngineEvent) {
    if (e.kind === 'ready') {
      const m = e.msg;
      const title = m.fallbackReason ?? `maxStorageBufferBindingSize ${m.maxStorageBuffer ? formatBytes(m.maxStorageBuffer) : '–'}${m.shaderF16 ? ', shader-f16' : ''}`;
      store.update((s) => (s.engine = { status: 'ready', backend: m.backend, label: engineLabel(m), title }));
      if (m.fallbackReason) showError('Running on the CPU', m.fallbackReason, true);
      setStatus(`Engine ready on ${m.backend === 'webgpu' ? 'WebGPU' : 'the CPU'} (${formatMs(m.initMs)}).`);
      const src = store.state.pendingSource ?? store.state.model?.source ?? null;
      store.update((s) => (s.pendingSource = null));
      if (src) requestLoad(src);
    } else if (e.kind === 'crashed') {
      store.update((s) => {
        s.engine = { ...s.engine, status: 'failed' };
        s.busy = null;
      });
      showError('The studio engine could not start', `${e.message}. Reload the page; if it persists, rebuild with scripts/build-web.sh.`);
      setStatus('Engine failed to start.');
    } else if (e.kind === 'error') {
      if (e.msg.phase === 'init') store.update((s) => (s.engine = { ...s.engine, status: 'failed' }));
      ctx.failed(e.msg);
    }
  }

  function render() {
    const s = store.state;
    const ready = s.engine.status === 'ready';
    const idle = s.busy === null;
    el.engineDot.className = `dot${s.engine.status === 'failed' ? ' bad' : ready ? (s.engine.backend === 'webgpu' ? ' ok' : ' warn') : ''}`;
    el.engineText.textContent = ready ? s.engine.label : s.engine.status === 'failed' ? 'Engine failed' : 'Starting…';
    if (ready) el.engineText.parentElement!.title = s.engine.title;
    el.model.disabled = !ready || !idle;
    el.openFolder.disabled = !ready || !idle;
    el.hubDownload.disabled = !ready || !idle;
    el.backend.disabled = !idle || s.engine.status === 'starting';
  }

  /** The device select: a fresh engine, then the model it had (or was loading) again. */
  function onBackendChange() {
    const src = store.state.model?.source ?? store.state.pendingLoad;
    store.update((s) => {
      s.backendChoice = backendChoice(el.backend.value);
      s.model = null;
      s.edits = [];
      s.pendingSource = src;
    });
    clearError(true);
    ctx.startEngine();
  }

  el.backend.value = store.state.backendChoice;
  el.backend.addEventListener('change', onBackendChange);
  el.openFolder.addEventListener('click', () => el.folderInput.click());
  el.folderInput.addEventListener('change', () => {
    const list = Array.from(el.folderInput.files ?? []);
    el.folderInput.value = '';
    if (list.length) loadLocal(list.map((f) => ({ path: f.webkitRelativePath || f.name, item: f })));
  });
  el.model.addEventListener('change', () => {
    const v = el.model.value;
    showHubPanel(v);
    const s = store.state;
    if (v === LOCAL && s.local) requestLoad(s.local);
    const b = s.bundled.find((m) => m.id === v);
    if (b) requestLoad(bundledSource(b));
  });
  el.hubDownload.addEventListener('click', onHubDownload);
  el.hubRepo.addEventListener('keydown', (e) => {
    if (e.key === 'Enter') onHubDownload();
  });
  store.subscribe(render);

  /** The model list arrived: offer it, and load the one the URL (or the default) names. */
  function boot(models: BundledModel[], want: string | undefined | null, sharedHubRepo: string | undefined) {
    store.update((s) => (s.bundled = models));
    fillModelSelect();
    if (want?.startsWith('hub:')) {
      // A shared hub model is offered, not downloaded unasked.
      el.model.value = want === HUB_OTHER || !HUB_PRESETS.some((p) => `hub:${p.repo}` === want) ? HUB_OTHER : want;
      if (el.model.value === HUB_OTHER && !sharedHubRepo && want !== HUB_OTHER) el.hubRepo.value = want.slice(4);
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
  }

  /** The model part of a share link. */
  function shareValues(): Pick<Shared, 'model' | 'hubRepo'> {
    const m = store.state.model;
    const modelId = m?.id ?? el.model.value;
    return {
      model: modelId === LOCAL ? undefined : modelId || undefined,
      hubRepo:
        modelId === HUB_OTHER ? el.hubRepo.value.trim() : m?.source.kind === 'hub' && !HUB_PRESETS.some((p) => `hub:${p.repo}` === modelId) ? m.source.repo : undefined,
    };
  }

  return { onEngine, boot, loadLocal, shareValues };
}

/** models/index.json: the models this page serves itself (none when it is missing). */
export async function fetchBundled(): Promise<BundledModel[]> {
  try {
    const res = await fetch(new URL('models/index.json', location.href));
    if (!res.ok) return [];
    const j = (await res.json()) as { models?: BundledModel[] };
    return Array.isArray(j.models) ? j.models : [];
  } catch {
    return [];
  }
}

function downloadRow(f: DownloadFile): HTMLLIElement {
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
}
