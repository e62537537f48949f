// What main.ts hands every panel: the store, the engine client, and the two page-wide actions
// (restart the engine; report a failed request). Types only, so that panels depend on no panel.

import type { ErrorMsg, EngineClient } from './engine-client';
import type { UrlSettings } from './logic';
import type { Recovery } from './recovery';
import type { Store } from './store';

export interface Ctx {
  store: Store;
  engine: EngineClient;
  /** `?tasksMax=` and friends (logic.ts `urlSettings`). */
  settings: UrlSettings;
  /** The hub (or `?hub=` mirror) the hub presets download from. */
  hubEndpoint: string;
  /** A fresh engine on `store.state.backendChoice`; whatever ran is dropped. */
  startEngine(): void;
  /** Reports a failed request after its panel did its own part (the error box, the status line, a restart after a crash). */
  failed(m: ErrorMsg): void;
  /** A fresh engine that loads the model (and its entries) again, after the message (web/ui/recovery.ts). */
  recover: Recovery['recover'];
}

const TITLES: Record<ErrorMsg['phase'], string> = {
  init: 'The engine could not start',
  load: 'The model could not be loaded',
  generate: 'Generation failed',
  edit: 'The file was not applied',
  erase: 'Erasure failed',
};

const AFTER: Partial<Record<ErrorMsg['phase'], string>> = {
  generate: 'Generation failed; the model is still loaded.',
  edit: 'The file was not applied; the model is unchanged.',
  erase: 'Nothing was erased; the model is unchanged.',
};

/** The error box's title for a failure in `phase`. */
export function failureTitle(phase: ErrorMsg['phase']): string {
  return TITLES[phase];
}

/** The status line after a failure in `phase`. */
export function failureStatus(phase: ErrorMsg['phase']): string {
  return AFTER[phase] ?? 'Failed: see the message above.';
}
