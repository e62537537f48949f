// The page's state in one place, and who is told when it changes. Panels read `store.state`,
// change it only through `store.update`, and re-render what they show from it in a subscriber
// (this replaces the hand calls of `refreshControls()`): a control's `disabled`, the generate
// button's label, the shown panes and the variant list are functions of this state, never read
// back from the DOM.

import type { AttentionMaps, AttentionSelection, BackendChoice, EditAnatomy, EntryInfo, EntryRequest, FileEntry, GenerateParams, ModelInfo, ModelSource } from '../protocol';
import type { Variant } from './compare';
import type { RunFacts } from './equations';
import type { Shared } from './share';

/** A model the page serves itself (models/index.json). */
export interface BundledModel {
  id: string;
  name: string;
  description: string;
  files: FileEntry[];
  /** The classroom evaluator beside it (`evaluator/config.json`, `evaluator/model.safetensors`): the sweep chart scores images with it. */
  evaluator?: FileEntry[];
}

export interface LoadedModel {
  name: string;
  /** The model select's value for it (a bundled id, `hub:owner/name`, or the local marker). */
  id: string;
  info: ModelInfo;
  source: ModelSource;
}

/**
 * A variant entry of the erase panel: an edit, an adapter or steering, toggled on and off. The
 * entry itself lives in the engine's Session (by id); the page keeps what it lists.
 */
export interface EditEntry {
  id: string;
  info: EntryInfo;
  enabled: boolean;
  /** How the entry was made, so that a fresh engine can make it again (web/ui/recovery.ts). */
  recipe: EntryRecipe;
}

/** An entry's request without its id: the file it was added from (a `File`, never read here), or what it was computed from. */
export type EntryRecipe = { type: 'entry-add'; file: string; data: Blob } | { type: 'entry-compute'; request: EntryRequest };

/** What a fresh engine must hold again: a model and its entries (device lost, engine crashed, a load failed after dropping the model). */
export interface RecoveryPlan {
  source: ModelSource;
  name: string;
  entries: readonly EditEntry[];
  /** Why (the error box's title and text), for the message once it is done. */
  reason: string;
  message: string;
}

/** Where a run's image goes. */
export type Target = { kind: 'original' } | { kind: 'edited' } | { kind: 'grid'; row: number; col: number };

/** One run of a click on Generate. */
export interface Job {
  params: GenerateParams;
  edits: string[];
  target: Target;
}

/** A finished image, kept for the difference map and the PNG's text chunks. */
export interface Result {
  width: number;
  height: number;
  rgba: Uint8ClampedArray;
  params: GenerateParams;
  edits: string[];
  requestId: number;
  /** DAAM's heat maps, when the run recorded them. */
  attention?: AttentionMaps | null;
  /** The denoising timeline: x̂₀ after each step (RGBA frames one after another), when asked for. */
  timeline?: Uint8ClampedArray | null;
}

/** The engine as the header shows it. */
export interface EngineState {
  status: 'starting' | 'ready' | 'failed';
  backend: 'webgpu' | 'cpu' | null;
  /** The header's text and tooltip once ready. */
  label: string;
  title: string;
}

export interface PageState {
  engine: EngineState;
  backendChoice: BackendChoice;
  bundled: BundledModel[];
  /** The last local folder picked (offered in the model select). */
  local: ModelSource | null;
  model: LoadedModel | null;
  busy: null | 'load' | 'generate' | 'edit';
  /** A load to start once the engine is ready. */
  pendingSource: ModelSource | null;
  /** The source of the load asked for last (kept across an engine restart). */
  pendingLoad: ModelSource | null;
  /** Replaced, never changed in place, so that the variant list knows when to re-render. */
  edits: readonly EditEntry[];
  editCounter: number;
  view: 'side' | 'grid';
  /** The runs of the current Generate click still to start, the one running, how many in all. */
  run: { jobs: Job[]; current: Job | null; count: number; start: number };
  results: { original: Result | null; edited: Result | null };
  /** Whether the latest run set had an edited variant (keeps its pane visible). */
  lastHadEdited: boolean;
  gridVariants: Variant[];
  /** The user chose a scheduler (a model's default no longer replaces it). */
  schedulerTouched: boolean;
  /** The user (or a share link) set guidance / steps (a model's studio.json no longer replaces them). */
  guidanceTouched: boolean;
  stepsTouched: boolean;
  /** The user wrote grid prompts (defaults from the model or an erased concept no longer replace them). */
  gridPromptsTouched: boolean;
  /** The hash settings not applied yet (size and the hub repo wait for the model list / model). */
  restore: Shared;
  /** A recovery under way: the model loading again, then its entries. */
  recovering: RecoveryPlan | null;
  /** The prompt word whose attention map shows (an index into the maps' `words`), null: the best one. */
  attentionWord: number | null;
  /** The steps and resolutions the next maps aggregate (the attention view's choice), null: every step and layer. */
  attentionSelection: AttentionSelection | null;
  /** The timeline's step shown (1-based), null: the last. */
  timelineStep: number | null;
  /** The entry the "What it does" view explains (its equation; an edit's anatomy once read). */
  explain: { id: string; anatomy: EditAnatomy | null; state: 'pending' | 'reading' | 'done' | 'failed' } | null;
  /** What the last run with each entry on showed (its prompt, an SPM's permeability, steering's note), by entry id. */
  runFacts: Record<string, RunFacts>;
}

export type Listener = (state: Readonly<PageState>) => void;

export class Store {
  readonly state: PageState;
  private listeners: Listener[] = [];

  constructor(initial: PageState) {
    this.state = initial;
  }

  /** Changes the state, then tells every subscriber (in the order they subscribed). */
  update(change: (s: PageState) => void): void {
    change(this.state);
    this.notify();
  }

  /** Calls `fn` now and after every update. */
  subscribe(fn: Listener): void {
    this.listeners.push(fn);
    fn(this.state);
  }

  private notify(): void {
    for (const fn of this.listeners) fn(this.state);
  }
}

export function initialState(backendChoice: BackendChoice, restore: Shared): PageState {
  return {
    engine: { status: 'starting', backend: null, label: '', title: '' },
    backendChoice,
    bundled: [],
    local: null,
    model: null,
    busy: null,
    pendingSource: null,
    pendingLoad: null,
    edits: [],
    editCounter: 0,
    view: restore.view === 'grid' ? 'grid' : 'side',
    run: idleRun(),
    results: { original: null, edited: null },
    lastHadEdited: false,
    gridVariants: [],
    schedulerTouched: !!restore.scheduler,
    guidanceTouched: restore.guidance !== undefined,
    stepsTouched: restore.steps !== undefined,
    gridPromptsTouched: !!restore.gridPrompts?.length,
    restore: { ...restore },
    recovering: null,
    attentionWord: null,
    attentionSelection: null,
    timelineStep: null,
    explain: null,
    runFacts: {},
  };
}

export function idleRun(): PageState['run'] {
  return { jobs: [], current: null, count: 0, start: 0 };
}

export function enabledEdits(s: Readonly<PageState>): EditEntry[] {
  return s.edits.filter((e) => e.enabled);
}

/** The engine is ready, nothing runs, a model is loaded: Generate and the erase panel may act. */
export function canAct(s: Readonly<PageState>): boolean {
  return s.engine.status === 'ready' && s.busy === null && s.model !== null;
}

/** A fresh variant entry id (`e1`, `e2`, …). */
export function nextEditId(store: Store): string {
  store.state.editCounter++;
  return `e${store.state.editCounter}`;
}
