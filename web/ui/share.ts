// An experiment as a URL: every setting in the hash (never an image or a file; edit files are
// named so that the reader knows which to add). Parsed back on load; unknown or malformed
// values are dropped, not trusted.

import { MAX_GUIDANCE, MAX_SEED, MAX_SIDE, MAX_STEPS } from '../generated/limits';
import { SCHEDULERS, type SchedulerName } from '../protocol';

export interface Shared {
  model?: string;
  prompt?: string;
  negativePrompt?: string;
  seed?: number;
  steps?: number;
  guidance?: number;
  size?: number;
  scheduler?: SchedulerName;
  previewEvery?: number;
  view?: 'side' | 'grid';
  gridPrompts?: string[];
  eraseMethod?: string;
  concepts?: string;
  guides?: string;
  preserve?: string;
  /** LEACE / INLP: the other (neutral) prompts. */
  others?: string;
  eraseParams?: string;
  /** Edit files that were active (names only). */
  edits?: string[];
  hubRepo?: string;
}

const KEYS: Record<keyof Shared, string> = {
  model: 'm',
  prompt: 'p',
  negativePrompt: 'n',
  seed: 'seed',
  steps: 'steps',
  guidance: 'g',
  size: 'size',
  scheduler: 'sch',
  previewEvery: 'prev',
  view: 'view',
  gridPrompts: 'grid',
  eraseMethod: 'em',
  concepts: 'ec',
  guides: 'eg',
  preserve: 'ep',
  others: 'eo',
  eraseParams: 'eh',
  edits: 'edits',
  hubRepo: 'repo',
};

export function toHash(s: Shared): string {
  const q = new URLSearchParams();
  for (const [k, short] of Object.entries(KEYS) as [keyof Shared, string][]) {
    const v = s[k];
    if (v === undefined || v === '' || (Array.isArray(v) && v.length === 0)) continue;
    q.set(short, Array.isArray(v) ? v.join('\n') : String(v));
  }
  return `#${q.toString()}`;
}

const int = (v: string | null, lo: number, hi: number) => (v !== null && /^\d+$/.test(v) && Number(v) >= lo && Number(v) <= hi ? Number(v) : undefined);

export function fromHash(hash: string): Shared {
  const q = new URLSearchParams(hash.replace(/^#/, ''));
  const get = (k: keyof Shared) => q.get(KEYS[k]);
  const str = (k: keyof Shared, max = 2000) => {
    const v = get(k);
    return v !== null && v.length <= max ? v : undefined;
  };
  const list = (k: keyof Shared) => {
    const v = str(k, 20000);
    return v === undefined ? undefined : v.split('\n').filter((x) => x.trim() !== '').slice(0, 32);
  };
  const g = get('guidance');
  const guidance = g !== null && g.trim() !== '' && Number.isFinite(Number(g)) && Number(g) >= 0 && Number(g) <= MAX_GUIDANCE ? Number(g) : undefined;
  const sch = get('scheduler');
  const view = get('view');
  const out: Shared = {
    model: str('model', 200),
    prompt: str('prompt'),
    negativePrompt: str('negativePrompt'),
    seed: int(get('seed'), 0, MAX_SEED),
    steps: int(get('steps'), 1, MAX_STEPS),
    guidance,
    size: int(get('size'), 1, MAX_SIDE),
    scheduler: (SCHEDULERS as readonly string[]).includes(sch ?? '') ? (sch as SchedulerName) : undefined,
    previewEvery: int(get('previewEvery'), 0, MAX_STEPS),
    view: view === 'side' || view === 'grid' ? view : undefined,
    gridPrompts: list('gridPrompts'),
    eraseMethod: str('eraseMethod', 20),
    concepts: str('concepts'),
    guides: str('guides'),
    preserve: str('preserve'),
    others: str('others'),
    eraseParams: str('eraseParams'),
    edits: list('edits'),
    hubRepo: str('hubRepo', 200),
  };
  for (const k of Object.keys(out) as (keyof Shared)[]) if (out[k] === undefined) delete out[k];
  return out;
}

/** What a share link may carry beyond the settings: the user ticks each (web/ui/share-link.ts). */
export interface ShareChoice {
  /** Prompt, negative prompt, grid prompts and the erase form's concepts, guides, preserve and other prompts. */
  prompts: boolean;
  /** Names of the active edit files (never their contents). */
  fileNames: boolean;
}

/** Fields holding text the user typed (prompts and concept lists). */
export const PROMPT_FIELDS = ['prompt', 'negativePrompt', 'gridPrompts', 'concepts', 'guides', 'preserve', 'others'] as const satisfies readonly (keyof Shared)[];

/** `s` without what the user chose not to share. */
export function shareable(s: Shared, choice: ShareChoice): Shared {
  const out: Shared = { ...s };
  if (!choice.prompts) for (const k of PROMPT_FIELDS) delete out[k];
  if (!choice.fileNames) delete out.edits;
  return out;
}

/** A line saying what a link of `s` holds (shown when it is copied). */
export function shareSummary(s: Shared): string {
  const typed = PROMPT_FIELDS.filter((k) => s[k] !== undefined && s[k] !== '' && !(Array.isArray(s[k]) && s[k].length === 0));
  const parts = ['the settings'];
  if (typed.length > 0) parts.push(`your ${typed.length === 1 && typed[0] === 'prompt' ? 'prompt' : 'prompts and concepts'}`);
  if (s.edits?.length) parts.push(`${s.edits.length} edit file name${s.edits.length === 1 ? '' : 's'}`);
  return `it holds ${parts.join(', ')}; never an image or a file's contents`;
}
