// Keeps the studio working when its engine goes away: a lost GPU device (`GPUDevice.lost`), a
// crashed wasm module (a trap), or a load that failed after the engine had dropped the model it
// held. The page knows what the engine held — the model's source and each entry's recipe (the
// `File` it was added from, or the request it was computed from; web/ui/store.ts EntryRecipe) —
// so a fresh engine is given them again: the model, then every entry under the same id, with the
// same on/off state. Variants and grid columns name entries by id, so they survive as they were.
//
// One recovery at a time: a failure while recovering (the model no longer loads) ends it with
// the message, and the page stays usable with no model.

import type { EngineClient } from './engine-client';
import type { EditEntry, RecoveryPlan, Store } from './store';
import { clearError, setStatus, showError } from './dom';

export interface Recovery {
  /** Starts a fresh engine that loads the current model (or `plan`'s) and its entries again. */
  recover(title: string, message: string, plan?: Omit<RecoveryPlan, 'reason' | 'message'>): void;
  /** Called once a model has loaded: a recovery's entries are added again. */
  afterLoad(): Promise<void>;
  /** Called when a load failed: a recovery that cannot load its model ends here. */
  loadFailed(): boolean;
}

/** What a recovery needs of the page (a part of main.ts' Ctx). */
export interface RecoveryDeps {
  store: Store;
  engine: EngineClient;
  startEngine(): void;
}

export function createRecovery(ctx: RecoveryDeps): Recovery {
  const { store, engine } = ctx;

  function recover(title: string, message: string, given?: Omit<RecoveryPlan, 'reason' | 'message'>) {
    const s = store.state;
    // Sticky until the recovery ends: the reload's own start would clear it otherwise.
    showError(title, message, true);
    if (s.recovering) return; // already under way: the fresh engine loads what it was given
    const why = { reason: title, message };
    const plan: RecoveryPlan | null = given
      ? { ...given, ...why }
      : s.model
        ? { source: s.model.source, name: s.model.name, entries: s.edits, ...why }
        : s.pendingLoad
          ? { source: s.pendingLoad, name: s.pendingLoad.name, entries: [], ...why }
          : null;
    store.update((st) => {
      st.recovering = plan;
      st.pendingSource = plan?.source ?? null;
      st.model = null;
      st.edits = [];
    });
    ctx.startEngine();
    if (plan) setStatus(`${title}: starting a new engine, then ${plan.name}${plan.entries.length ? ` and its ${plan.entries.length} entr${plan.entries.length === 1 ? 'y' : 'ies'}` : ''}…`);
  }

  async function afterLoad() {
    const plan = store.state.recovering;
    if (!plan) return;
    store.update((s) => (s.busy = 'edit'));
    const back: EditEntry[] = [];
    const failed: string[] = [];
    for (const e of plan.entries) {
      setStatus(`Recovering: adding ${e.info.file} again (${back.length + failed.length + 1} of ${plan.entries.length})…`);
      const m = await engine.request({ ...e.recipe, id: e.id });
      if (m === null) return; // the engine was replaced again: that recovery takes over
      if (m.status === 'entry') back.push({ ...e, info: m.entry });
      else failed.push(`${e.info.file}: ${m.message}`);
    }
    store.update((s) => {
      s.busy = null;
      s.recovering = null;
      s.edits = back;
    });
    const what = `${plan.name} is loaded again${plan.entries.length ? ` with ${back.length} of ${plan.entries.length} entries, on and off as they were` : ''}`;
    const lost = failed.length ? ` These could not be added again: ${failed.join('; ')}.` : '';
    showError(plan.reason, `${plan.message}\n\nRecovered: ${what}.${lost}`);
    setStatus(`Recovered (${plan.reason.toLowerCase()}): ${what}.`);
  }

  function loadFailed(): boolean {
    if (!store.state.recovering) return false;
    store.update((s) => (s.recovering = null));
    clearError(true);
    return true;
  }

  return { recover, afterLoad, loadFailed };
}
