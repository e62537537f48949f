// The generation form and its runs. A click on Generate becomes a queue of runs (jobs): the
// original (no edits), then the edited variant (the enabled edits), or one run per grid cell.
// The worker applies / reverts edits before each run, so every variant comes from the one
// loaded model. The runs go one after another, each awaiting its answer.

import { SCHEDULERS, type GenerateParams, type ModelInfo } from '../../protocol';
import { SCHEDULER_LABELS, checkForm, formatMs, fraction, randomSeed, sizeOptions, splitList, type FormValues } from '../logic';
import { defaultGridPrompts, gridVariants } from '../compare';
import type { Shared } from '../share';
import type { Ctx } from '../context';
import type { Streamed } from '../engine-client';
import { canAct, enabledEdits, type Job } from '../store';
import { selectionFor } from '../attention-choice';
import { byId, clearError, markInvalid, setStatus, showError } from '../dom';
import { editLabel } from './variant-list';
import type { createResults } from './results';

export interface GenerateDeps {
  results: ReturnType<typeof createResults>;
  /** Facilitated Transport for the SPMs. */
  ft(): boolean;
  /** The erase panel's concepts as typed (the grid's default prompts start from them). */
  eraseConcepts(): string;
}

export function createGenerate(ctx: Ctx, deps: GenerateDeps) {
  const { store, engine } = ctx;
  const { results } = deps;
  const el = {
    form: byId<HTMLFormElement>('form'),
    prompt: byId<HTMLTextAreaElement>('prompt'),
    negative: byId<HTMLTextAreaElement>('negative-prompt'),
    seed: byId<HTMLInputElement>('seed'),
    dice: byId<HTMLButtonElement>('dice'),
    steps: byId<HTMLInputElement>('steps'),
    guidance: byId<HTMLInputElement>('guidance'),
    size: byId<HTMLSelectElement>('size'),
    scheduler: byId<HTMLSelectElement>('scheduler'),
    previewEvery: byId<HTMLSelectElement>('preview-every'),
    attention: byId<HTMLInputElement>('attention-maps'),
    timeline: byId<HTMLInputElement>('timeline-on'),
    viewSide: byId<HTMLInputElement>('view-side'),
    viewGrid: byId<HTMLInputElement>('view-grid'),
    gridField: byId('grid-field'),
    gridPrompts: byId<HTMLTextAreaElement>('grid-prompts'),
    generate: byId<HTMLButtonElement>('generate'),
    cancel: byId<HTMLButtonElement>('cancel'),
    progress: byId<HTMLProgressElement>('progress'),
    progressText: byId('progress-text'),
  };
  /** For benchmarks and tests (window.__studio). */
  const telemetry = {
    /** Steps at which previews arrived (all runs). */
    previews: [] as number[],
    /** Timings of every finished image, in order. */
    timings: [] as { totalMs: number; perStepMs: number; stepsMs: number; decodeMs: number }[],
    /** performance.now() when the first image arrived. */
    firstImageAt: null as number | null,
  };
  const t0 = performance.now();
  let firstImage = false;

  function values(): FormValues {
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

  function gridPromptList(): string[] {
    return el.gridPrompts.value
      .split('\n')
      .map((p) => p.trim())
      .filter((p) => p !== '')
      .slice(0, 12);
  }

  /** The grid's prompts follow the model and the erased concepts until the user writes their own. */
  function defaultGrid(concepts: string[]) {
    if (!store.state.gridPromptsTouched) el.gridPrompts.value = defaultGridPrompts(store.state.model?.id ?? null, concepts).join('\n');
  }

  /** A model loaded: its sizes, its scheduler (unless the user chose one), grid prompts for it. */
  function applyModel(info: ModelInfo) {
    const previous = Number(store.state.restore.size ?? el.size.value);
    const sizes = sizeOptions(info);
    el.size.replaceChildren(...sizes.map((s) => new Option(`${s} × ${s}${s === info.defaultWidth ? '  (native)' : ''}`, String(s))));
    el.size.value = String(sizes.includes(previous) ? previous : info.defaultWidth);
    store.update((s) => delete s.restore.size);
    if (!store.state.schedulerTouched && (SCHEDULERS as readonly string[]).includes(info.defaultScheduler)) el.scheduler.value = info.defaultScheduler;
    // The folder's recommended guidance and steps (studio.json), unless the user or a link chose.
    if (!store.state.guidanceTouched && info.defaultGuidance != null) el.guidance.value = String(info.defaultGuidance);
    if (!store.state.stepsTouched && info.defaultSteps != null) el.steps.value = String(info.defaultSteps);
    defaultGrid(splitList(deps.eraseConcepts()));
  }

  function generate() {
    const s = store.state;
    if (!s.model || s.busy) return;
    for (const i of [el.seed, el.steps, el.guidance]) markInvalid(i, false);
    const checked = checkForm(values(), s.model.info);
    if (!checked.ok) {
      const input: Partial<Record<keyof FormValues, HTMLInputElement>> = { seed: el.seed, steps: el.steps, guidance: el.guidance };
      const field = input[checked.field];
      if (field) markInvalid(field, true);
      showError('Check the settings', checked.message);
      return;
    }
    const params: GenerateParams = { ...checked.params, previewEvery: Number(el.previewEvery.value) || 0 };
    // Attention maps are shown for the original and the edited image (not per grid cell).
    if (el.attention.checked && s.view !== 'grid') {
      params.attention = true;
      const selection = selectionFor(s.attentionSelection, params.steps);
      if (selection) params.attentionSelection = selection;
    }
    if (el.timeline.checked && s.view !== 'grid') params.timeline = true;
    const enabled = enabledEdits(s);
    const jobs: Job[] = [];
    if (s.view === 'grid') {
      const prompts = gridPromptList();
      if (!prompts.length) {
        showError('Add grid prompts', 'Type one prompt per line: the erased concept first, then neighbouring concepts that must stay.');
        return;
      }
      const variants = gridVariants(enabled.map((e) => ({ id: e.id, label: editLabel(e) })));
      store.update((st) => (st.gridVariants = variants));
      results.buildGrid(prompts, variants);
      prompts.forEach((prompt, row) => variants.forEach((v, col) => jobs.push({ params: { ...params, prompt }, edits: v.edits, target: { kind: 'grid', row, col } })));
    } else {
      jobs.push({ params, edits: [], target: { kind: 'original' } });
      if (enabled.length) jobs.push({ params, edits: enabled.map((e) => e.id), target: { kind: 'edited' } });
      store.update((st) => {
        st.lastHadEdited = enabled.length > 0;
        st.results = { original: null, edited: null };
        st.attentionWord = null;
        st.timelineStep = null;
      });
      results.clearDiffStats();
    }
    clearError();
    store.update((st) => {
      st.run = { jobs, current: null, count: jobs.length, start: performance.now() };
      st.busy = 'generate';
    });
    void runAll();
  }

  function jobLabel(j: Job): string {
    if (j.target.kind === 'original') return store.state.run.count > 1 ? 'original' : '';
    if (j.target.kind === 'edited') return 'edited';
    return `cell ${j.target.row + 1}×${j.target.col + 1}`;
  }

  /** Starts the next run; returns it, or null when the queue is done (the page is idle again). */
  function nextJob(): Job | null {
    let job: Job | null = null;
    store.update((s) => {
      job = s.run.jobs.shift() ?? null;
      s.run.current = job;
      if (!job) s.busy = null;
    });
    return job;
  }

  function onRunProgress(job: Job, m: Streamed) {
    const run = store.state.run;
    if (m.status === 'progress') {
      el.progress.value = fraction(m.step, m.total);
      const n = run.count - run.jobs.length;
      const which = jobLabel(job);
      el.progressText.textContent = run.count > 1 ? `Run ${n}/${run.count} · step ${m.step}/${m.total}` : `Step ${m.step} / ${m.total}`;
      setStatus(`${which ? `${which[0].toUpperCase()}${which.slice(1)}: ` : ''}step ${m.step} of ${m.total} · ${formatMs(m.stepMs)} per step · ${formatMs(m.elapsedMs)} so far`);
    } else if (m.status === 'preview') {
      telemetry.previews.push(m.step);
      results.showPreview(job, m);
    }
  }

  async function runAll() {
    for (let job = nextJob(); job; job = nextJob()) {
      const run = store.state.run;
      el.progress.value = 0;
      const which = jobLabel(job);
      const n = run.count - run.jobs.length;
      el.progressText.textContent = run.count > 1 ? `Run ${n} / ${run.count}` : 'Encoding prompt…';
      setStatus(`${which ? `Generating the ${which} image (${n} of ${run.count}): ` : ''}encoding the prompt…`);
      const current = job;
      const m = await engine.request({ type: 'generate', params: job.params, edits: job.edits, ft: deps.ft() }, (p) => onRunProgress(current, p));
      if (m === null) return;
      if (m.status === 'error') return ctx.failed(m);
      if (m.status === 'cancelled') {
        store.update((s) => {
          s.busy = null;
          s.run.jobs = [];
          s.run.current = null;
        });
        el.progressText.textContent = `Cancelled at ${m.step} / ${m.total}`;
        setStatus(`Cancelled after step ${m.step} of ${m.total}. Ready.`);
        return;
      }
      if (m.status !== 'image') return;
      telemetry.timings.push(m.timing);
      telemetry.firstImageAt ??= performance.now();
      results.showImage(job, m);
      el.progress.value = 1;
      const r = store.state.run;
      if (!r.jobs.length) {
        const first = firstImage ? '' : `, first image ${formatMs(performance.now() - t0)} after page load`;
        firstImage = true;
        const truncated = m.promptTruncated ? ' The prompt was longer than 77 tokens and was cut.' : '';
        const steered = m.steering ? ` ${m.steering}.` : '';
        const all = r.count > 1 ? `${r.count} images in ${formatMs(performance.now() - r.start)}` : `Done in ${formatMs(m.timing.totalMs)}`;
        el.progressText.textContent = `Done · ${m.params.steps} steps`;
        setStatus(`${all} (${formatMs(m.timing.perStepMs)} per step${first}).${truncated}${steered}`);
      }
    }
  }

  function cancel() {
    if (store.state.busy !== 'generate') return;
    store.update((s) => (s.run.jobs = []));
    engine.cancel();
    el.progressText.textContent = 'Cancelling…';
    setStatus('Cancelling after the current step…');
  }

  /** Fills the form from a share link. */
  function applyShared(s: Shared) {
    if (s.prompt !== undefined) el.prompt.value = s.prompt;
    if (s.negativePrompt !== undefined) el.negative.value = s.negativePrompt;
    if (s.seed !== undefined) el.seed.value = String(s.seed);
    if (s.steps !== undefined) el.steps.value = String(s.steps);
    if (s.guidance !== undefined) el.guidance.value = String(s.guidance);
    if (s.scheduler) el.scheduler.value = s.scheduler;
    if (s.previewEvery !== undefined && [...el.previewEvery.options].some((o) => o.value === String(s.previewEvery))) el.previewEvery.value = String(s.previewEvery);
    if (s.gridPrompts?.length) el.gridPrompts.value = s.gridPrompts.join('\n');
  }

  function shareValues(): Shared {
    const v = values();
    const grid = store.state.view === 'grid';
    return {
      prompt: v.prompt,
      negativePrompt: v.negativePrompt,
      seed: Number(v.seed),
      steps: Number(v.steps),
      guidance: Number(v.guidance),
      size: Number(v.size),
      scheduler: v.scheduler as Shared['scheduler'],
      previewEvery: Number(el.previewEvery.value),
      view: grid ? 'grid' : 'side',
      gridPrompts: grid ? el.gridPrompts.value.split('\n').filter((x) => x.trim()) : undefined,
    };
  }

  el.scheduler.replaceChildren(...SCHEDULERS.map((s) => new Option(SCHEDULER_LABELS[s], s)));
  el.scheduler.value = 'ddim';
  el.prompt.value = 'a big red star on a blue striped background';
  el.seed.value = '42';
  el.steps.value = '20';
  el.guidance.value = '7.5';
  el.size.replaceChildren(new Option('—', ''));

  el.scheduler.addEventListener('change', () => store.update((s) => (s.schedulerTouched = true)));
  el.guidance.addEventListener('input', () => store.update((s) => (s.guidanceTouched = true)));
  el.steps.addEventListener('input', () => store.update((s) => (s.stepsTouched = true)));
  el.gridPrompts.addEventListener('input', () => store.update((s) => (s.gridPromptsTouched = true)));
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
  el.cancel.addEventListener('click', cancel);
  el.dice.addEventListener('click', () => {
    el.seed.value = String(randomSeed());
    markInvalid(el.seed, false);
  });
  for (const r of [el.viewSide, el.viewGrid]) r.addEventListener('change', () => store.update((s) => (s.view = el.viewGrid.checked ? 'grid' : 'side')));

  store.subscribe((s) => {
    const grid = s.view === 'grid';
    el.viewGrid.checked = grid;
    el.viewSide.checked = !grid;
    el.gridField.hidden = !grid;
    el.attention.disabled = grid;
    el.timeline.disabled = grid;
    el.generate.disabled = !canAct(s);
    el.cancel.disabled = s.busy !== 'generate';
    const n = enabledEdits(s).length;
    el.generate.textContent = s.busy === 'generate' ? 'Generating…' : grid ? 'Generate grid' : n ? 'Generate original + edited' : 'Generate';
  });

  return {
    /** Generate, as the button does. */
    run: generate,
    applyModel,
    applyShared,
    shareValues,
    /** The form's generation settings, checked (the sweep runs with them). */
    formParams: () => checkForm(values(), store.state.model?.info ?? null),
    defaultGrid,
    telemetry,
    clearProgressText: () => (el.progressText.textContent = ''),
  };
}
