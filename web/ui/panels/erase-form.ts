// "Erase a concept": the method and its fields, and what the button asks the engine for: a
// closed-form edit (UCE, TIME, RECE, SPEED, MACE), steering (SLD, SAFREE), a fitted eraser
// (LEACE, INLP), a Ring-A-Bell probe, or the edit / adapter / eraser files picked or dropped.
// Each answer becomes a variant entry in the store.

import { ERASE_METHODS, type EntryRequest, type EraseMethod, type EraserMethod } from '../../protocol';
import { formatMs, parseParams, splitList } from '../logic';
import {
  FIT_METHODS,
  STEERING_METHODS,
  addedStatus,
  eraserRequest,
  isFitMethod,
  isSteeringMethod,
  kindName,
  ringABellRequest,
  steeringRequest,
  type FormField,
} from '../variants';
import type { Shared } from '../share';
import type { Ctx } from '../context';
import type { EngineRequest } from '../engine-client';
import { canAct, nextEditId, type EntryRecipe } from '../store';
import { byId, clearError, markInvalid, setStatus, showError } from '../dom';

/** The erase panel's fields per method: labels, placeholders, which inputs show, the button. */
const FORM: Record<string, { concepts: string; conceptsHint: string; params: string; others?: boolean; button: string }> = {
  sld: { concepts: 'Safety concept <em>one text</em>', conceptsHint: '(empty: the official unsafe-concept list)', params: 'preset=medium (weak, medium, strong, max)', button: 'Add SLD variant' },
  safree: { concepts: 'Keywords <em>to steer away from, ; separated</em>', conceptsHint: 'skull; pirate flag', params: 'alpha=0.01, all_steps=false, artist=false', button: 'Add SAFREE variant' },
  leace: { concepts: 'Concept prompts <em>with the concept, ; separated</em>', conceptsHint: 'a skull; a photo of a skull; a big skull', params: '(none: LEACE is closed-form)', others: true, button: 'Fit LEACE eraser' },
  inlp: { concepts: 'Concept prompts <em>with the concept, ; separated</em>', conceptsHint: 'a skull; a photo of a skull; a big skull', params: 'iterations=10, min_accuracy=0.55', others: true, button: 'Fit INLP eraser' },
  'ring-a-bell': { concepts: 'Prompt pairs <em>with the concept|without, ; separated</em>', conceptsHint: 'a skull|a star; a photo of a skull|a photo of a star', params: 'eta=3 (RECE: 3 nudity, 0.9 Van Gogh)', button: 'Add Ring-A-Bell probe' },
};

export interface EraseFormDeps {
  /** A new entry erases `concepts` (the grid's default prompts follow them). */
  onConcepts(concepts: string[]): void;
}

export function createEraseForm(ctx: Ctx, deps: EraseFormDeps) {
  const { store, engine } = ctx;
  const el = {
    method: byId<HTMLSelectElement>('erase-method'),
    concepts: byId<HTMLInputElement>('erase-concepts'),
    conceptsLabel: byId('erase-concepts-label'),
    guides: byId<HTMLInputElement>('erase-guides'),
    preserve: byId<HTMLInputElement>('erase-preserve'),
    others: byId<HTMLInputElement>('erase-others'),
    params: byId<HTMLInputElement>('erase-params'),
    extra: byId('erase-extra'),
    apply: byId<HTMLButtonElement>('erase-apply'),
    time: byId('erase-time'),
    editInput: byId<HTMLInputElement>('edit-input'),
  };
  const inputs: Record<FormField, HTMLInputElement> = { concepts: el.concepts, others: el.others, params: el.params };

  /** Marks the field a request's problem is in, and clears the others. */
  function markField(field: FormField | null) {
    for (const [f, input] of Object.entries(inputs) as [FormField, HTMLInputElement][]) markInvalid(input, f === field);
  }

  function refreshForm() {
    const method = el.method.value;
    const file = method === 'file';
    const f = FORM[method];
    el.extra.hidden = file;
    for (const i of [el.guides, el.preserve]) (i.closest('label') as HTMLElement).hidden = !!f;
    (el.others.closest('label') as HTMLElement).hidden = !f?.others;
    el.concepts.placeholder = f?.conceptsHint ?? 'skull; pirate flag';
    el.conceptsLabel.innerHTML = f?.concepts ?? 'Concepts <em>; separated</em>';
    el.params.placeholder = f?.params ?? 'lamb=0.5, erase_scale=1';
    el.apply.textContent = file ? 'Choose edit, SPM, LoRA or eraser file…' : (f?.button ?? `Erase with ${method.toUpperCase()}`);
  }

  /** Asks the engine for a new entry; its answer joins the store's entries. */
  async function addEntry(msg: Extract<EngineRequest, { type: 'entry-add' | 'entry-compute' }>, status: string | null) {
    clearError();
    store.update((s) => (s.busy = 'edit'));
    if (status) setStatus(status);
    const m = await engine.request(msg);
    if (m === null) return;
    if (m.status === 'error') return ctx.failed(m);
    if (m.status !== 'entry') return;
    const e = m.entry;
    const recipe: EntryRecipe = msg.type === 'entry-add' ? { type: 'entry-add', file: msg.file, data: msg.data } : { type: 'entry-compute', request: msg.request };
    store.update((s) => {
      s.busy = null;
      s.edits = [...s.edits, { id: e.id, info: e, enabled: true, recipe }];
    });
    // The grid starts from the newly erased concept(s) unless the user wrote their own prompts.
    if (e.concepts.length) deps.onConcepts(e.concepts);
    el.time.textContent =
      e.kind === 'sld' || e.kind === 'safree'
        ? `${e.kind.toUpperCase()} added`
        : m.computed
          ? `${kindName(e)} ${isFitMethod(e.kind) ? 'fitted' : 'computed'} in ${formatMs(m.ms)}`
          : `applied in ${formatMs(m.ms)}`;
    el.time.setAttribute('data-testid', 'erase-time');
    setStatus(
      addedStatus(e) ??
        `${m.computed ? 'Computed' : 'Added'} ${e.file}: ${e.tensors.length} tensor(s) changed, on for the next generation${e.warning ? ' (see the warning)' : ''}.`,
    );
  }

  /** Asks the engine to compute entry `request` under a fresh id. */
  function compute(request: EntryRequest, status: string | null): Promise<void> {
    return addEntry({ type: 'entry-compute', id: nextEditId(store), request }, status);
  }

  /** Edit, SPM, LoRA and eraser files, added one after another. */
  async function addFiles(files: File[]) {
    if (!store.state.model) {
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
      // The File itself: the engine reads it by ranges.
      await addEntry({ type: 'entry-add', id: nextEditId(store), file: f.name, data: f }, `Checking ${f.name}…`);
    }
  }

  function onApply() {
    const method = el.method.value;
    if (method === 'file') {
      el.editInput.click();
      return;
    }
    if (isFitMethod(method)) {
      if (method === 'ring-a-bell') {
        const r = ringABellRequest(el.concepts.value, el.params.value);
        markField(r.ok ? null : r.field);
        if (!r.ok) return showError('Check the Ring-A-Bell settings', r.message);
        return compute({ kind: 'ring-a-bell', ...r.request }, 'Encoding the Ring-A-Bell prompt pairs…');
      }
      const r = eraserRequest(method as EraserMethod, el.concepts.value, el.others.value, el.params.value);
      markField(r.ok ? null : r.field);
      if (!r.ok) return showError(`Check the ${method.toUpperCase()} settings`, r.message);
      const status = `Fitting ${method.toUpperCase()} from ${r.request.concepts.length} concept and ${r.request.others.length} other prompts…`;
      return compute({ kind: 'fit-eraser', ...r.request }, status);
    }
    if (isSteeringMethod(method)) {
      const r = steeringRequest(method, el.concepts.value, el.params.value);
      markField(r.ok ? null : r.field);
      if (!r.ok) return showError(`Check the ${method.toUpperCase()} settings`, r.message);
      return compute({ kind: 'steer', ...r.steering }, null);
    }
    const concepts = splitList(el.concepts.value);
    if (!concepts.length) {
      markField('concepts');
      return showError('Name a concept', 'Type the concept(s) to erase, separated by ";" (e.g. "skull; pirate flag").');
    }
    const params = parseParams(el.params.value);
    markField(params.ok ? null : 'params');
    if (!params.ok) return showError('Check the hyper-parameters', params.message);
    const request: EntryRequest = {
      kind: 'erase',
      method: method as EraseMethod,
      concepts,
      guides: splitList(el.guides.value),
      preserve: splitList(el.preserve.value),
      params: params.params,
    };
    void compute(request, `Computing ${method.toUpperCase()} for ${concepts.join(', ')}…`);
  }

  /** Fills the fields from a share link (before the first `refreshForm`). */
  function applyShared(s: Shared) {
    if (s.eraseMethod && ['file', ...ERASE_METHODS, ...STEERING_METHODS, ...FIT_METHODS].includes(s.eraseMethod)) el.method.value = s.eraseMethod;
    if (s.concepts !== undefined) el.concepts.value = s.concepts;
    if (s.guides !== undefined) el.guides.value = s.guides;
    if (s.preserve !== undefined) el.preserve.value = s.preserve;
    if (s.others !== undefined) el.others.value = s.others;
    if (s.eraseParams !== undefined) el.params.value = s.eraseParams;
    if (s.edits?.length) {
      el.time.textContent = `this link used: ${s.edits.join(', ')}, add ${s.edits.length === 1 ? 'it' : 'them'} to reproduce`;
      el.time.setAttribute('data-testid', 'edits-needed');
    }
  }

  function shareValues(): Pick<Shared, 'eraseMethod' | 'concepts' | 'guides' | 'preserve' | 'others' | 'eraseParams'> {
    return { eraseMethod: el.method.value, concepts: el.concepts.value, guides: el.guides.value, preserve: el.preserve.value, others: el.others.value, eraseParams: el.params.value };
  }

  el.method.addEventListener('change', refreshForm);
  el.apply.addEventListener('click', onApply);
  el.editInput.addEventListener('change', () => {
    const files = Array.from(el.editInput.files ?? []);
    el.editInput.value = '';
    void addFiles(files);
  });
  store.subscribe((s) => (el.apply.disabled = !canAct(s)));

  return { applyShared, refreshForm, addFiles, shareValues, concepts: () => el.concepts.value, compute };
}
