// The erase panel's non-edit entries: SPM / LoRA adapters (dropped or picked `.safetensors`
// files the Session recognises by their kohya `lora_unet_…` tensors) and inference-time
// steering (SLD, SAFREE, LEACE / INLP erasers fitted in the page or dropped as files, Ring-A-Bell
// probes). They are listed, toggled and compared like edits (web/ui/panels/variant-list.ts);
// this module holds what differs: labels, row details, the steering and fit requests from the
// form (a refused one names its field), and the Facilitated Transport note.

import {
  SLD_PRESETS,
  type EntryInfo,
  type EraserFitRequest,
  type EraserMethod,
  type RingABellFitRequest,
  type SldPreset,
  type SteeringRequest,
} from '../protocol';
import { parseParams } from './logic';

/** The erase panel's field a request's problem is in (the page marks it). */
export type FormField = 'concepts' | 'others' | 'params';

/** A request the panel's fields do not make, the field to fix, and what to type instead. */
export interface Invalid {
  ok: false;
  field: FormField;
  message: string;
}

/** `parseParams`'s failure, as a problem of the hyper-parameters field. */
function paramsInvalid(p: { message: string }): Invalid {
  return { ok: false, field: 'params', message: p.message };
}

/** Methods of the erase panel's select that add steering instead of computing an edit. */
export const STEERING_METHODS = ['sld', 'safree'] as const;

export function isSteeringMethod(m: string): boolean {
  return (STEERING_METHODS as readonly string[]).includes(m);
}

/** Methods of the erase panel's select that fit a steering entry from prompts (an eraser, a probe). */
export const FIT_METHODS = ['leace', 'inlp', 'ring-a-bell'] as const;

export function isFitMethod(m: string): boolean {
  return (FIT_METHODS as readonly string[]).includes(m);
}

const KIND_NAMES: Record<string, string> = { spm: 'SPM', lora: 'LoRA', sld: 'SLD', safree: 'SAFREE', leace: 'LEACE', inlp: 'INLP', 'ring-a-bell': 'Ring-A-Bell' };

/** `LEACE`, `Ring-A-Bell`, … (the method in upper case for edits). */
export function kindName(info: EntryInfo): string {
  return KIND_NAMES[info.kind ?? ''] ?? info.method.toUpperCase();
}

/** The row title: `SPM: skull` / `LoRA: style.safetensors` / `SLD medium: …`; `null` for an edit. */
export function variantLabel(info: EntryInfo): string | null {
  if (info.kind === 'edit') return null;
  const name = KIND_NAMES[info.kind] ?? info.kind;
  if (info.kind === 'sld') return `${name} ${String(info.hyperparameters.preset ?? '')}: ${info.concepts.join(', ')}`;
  if (info.kind === 'safree') return `${name}: ${info.concepts.join(', ')}`;
  if (info.kind === 'ring-a-bell') return `${name} η = ${String(info.hyperparameters.eta)}: ${info.concepts.join(', ')}`;
  if (info.kind === 'leace' || info.kind === 'inlp') return `${name}: ${info.concepts.join(', ')}`;
  return info.concepts.length ? `${name}: ${info.concepts.join(', ')}` : `${name}: ${info.file}`;
}

/** The row's second line (`null` for an edit: the list writes its tensors). */
export function variantSub(info: EntryInfo): string | null {
  if (info.kind === 'edit') return null;
  if (info.kind === 'sld')
    return 'inference-time: a third UNet pass on the safety concept steers guidance; weights untouched';
  if (info.kind === 'safree') {
    const h = info.hyperparameters;
    const steps = h.allSteps ? 'every step' : 'the self-validating filter\'s steps';
    return `inference-time: the prompt's trigger tokens are projected off the keywords' subspace (α = ${String(h.alpha)}) for ${steps}; weights untouched`;
  }
  if (info.kind === 'leace' || info.kind === 'inlp') {
    const h = info.hyperparameters;
    const others = Array.isArray(h.others) ? (h.others as string[]) : [];
    return `${info.file} · rank ${String(h.rank)} of ${String(h.dText)} · ${info.concepts.length} concept / ${others.length} other prompt${others.length === 1 ? '' : 's'} · inference-time: the prompt's tokens are projected off the concept; weights untouched`;
  }
  if (info.kind === 'ring-a-bell') {
    const n = info.concepts.length;
    return `attack probe: the prompt's embedding + η·v, v from ${n} prompt pair${n === 1 ? '' : 's'}; combine it with an erasure to test whether the erasure holds`;
  }
  const h = info.hyperparameters;
  const layers = Number(h.layers ?? info.tensors.length);
  return `${info.file} · ${layers} layer${layers === 1 ? '' : 's'}, rank ${String(h.rank ?? '?')}, scale ${String(h.scale ?? 1)} · detaching restores the weights bit for bit`;
}

/** The status line after an entry was added. */
export function addedStatus(info: EntryInfo): string | null {
  if (info.kind === 'spm' || info.kind === 'lora')
    return `Attached ${info.file} (${KIND_NAMES[info.kind]}, ${String(info.hyperparameters.layers ?? '')} layers): on for the next generation.`;
  if (info.kind === 'sld') return `SLD (${String(info.hyperparameters.preset)}) added: it steers the edited variant's runs only.`;
  if (info.kind === 'safree') return `SAFREE added for ${info.concepts.join(', ')}: it steers the edited variant's runs only.`;
  if (info.kind === 'leace' || info.kind === 'inlp')
    return `${KIND_NAMES[info.kind]} eraser ${info.file} (rank ${String(info.hyperparameters.rank)}) ready: it steers the edited variant's runs only; Export saves it for studio generate --leace.`;
  if (info.kind === 'ring-a-bell') return `Ring-A-Bell probe (η = ${String(info.hyperparameters.eta)}) added: it attacks the edited variant's prompt.`;
  return null;
}

/**
 * The SLD request from the panel's fields, as `studio generate --sld PRESET --sld-concept C`:
 * `concept` is the safety concept as typed (blank: the official list), `params` may hold
 * `preset=weak|medium|strong|max` (default medium).
 */
export function sldRequest(concept: string, params: string): { ok: true; steering: SteeringRequest } | Invalid {
  const p = parseParams(params);
  if (!p.ok) return paramsInvalid(p);
  const unknown = Object.keys(p.params).find((k) => k !== 'preset');
  if (unknown) return { ok: false, field: 'params', message: `unknown SLD parameter \`${unknown}\`: SLD takes preset=${SLD_PRESETS.join('|')}` };
  const preset = String(p.params.preset ?? 'medium').toLowerCase();
  if (!(SLD_PRESETS as readonly string[]).includes(preset))
    return { ok: false, field: 'params', message: `unknown SLD preset \`${preset}\`: use ${SLD_PRESETS.join(', ')}` };
  const c = concept.trim();
  return { ok: true, steering: { sld: preset as SldPreset, ...(c ? { sldConcept: c } : {}) } };
}

/**
 * The SAFREE request from the panel's fields, as `studio generate --safree "kw1;kw2"
 * [--safree-alpha A] [--safree-all-steps] [--safree-artist]`: `keywords` as typed (`;`-separated,
 * at least one), `params` may hold `alpha=0.01`, `all_steps=true`, `artist=true`.
 */
export function safreeRequest(keywords: string, params: string): { ok: true; steering: SteeringRequest } | Invalid {
  const list = keywords
    .split(';')
    .map((k) => k.trim())
    .filter(Boolean);
  if (!list.length) return { ok: false, field: 'concepts', message: 'SAFREE needs at least one keyword of the concept to steer away from, e.g. "skull; pirate flag".' };
  const p = parseParams(params);
  if (!p.ok) return paramsInvalid(p);
  const unknown = Object.keys(p.params).find((k) => !['alpha', 'all_steps', 'artist'].includes(k));
  if (unknown) return { ok: false, field: 'params', message: `unknown SAFREE parameter \`${unknown}\`: SAFREE takes alpha=0.01, all_steps=true|false, artist=true|false` };
  const steering: SteeringRequest = { safree: list.join(';') };
  if (p.params.alpha !== undefined) {
    const a = Number(p.params.alpha);
    if (!Number.isFinite(a) || a <= -1) return { ok: false, field: 'params', message: `SAFREE's alpha must be a number above −1 (got ${String(p.params.alpha)})` };
    steering.safreeAlpha = a;
  }
  for (const [k, key] of [
    ['all_steps', 'safreeAllSteps'],
    ['artist', 'safreeArtist'],
  ] as const) {
    const v = p.params[k];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') return { ok: false, field: 'params', message: `SAFREE's ${k} must be true or false (got ${String(v)})` };
    steering[key] = v;
  }
  return { ok: true, steering };
}

/** The steering request of a steering method of the erase panel. */
export function steeringRequest(method: string, concepts: string, params: string): { ok: true; steering: SteeringRequest } | Invalid {
  return method === 'safree' ? safreeRequest(concepts, params) : sldRequest(concepts, params);
}

/** Prompts separated by `;` (commas stay inside a prompt, as `studio fit-eraser "a;b"`). */
function prompts(s: string): string[] {
  return s
    .split(';')
    .map((p) => p.trim())
    .filter(Boolean);
}

/**
 * The eraser fit request from the panel's fields, as `studio fit-eraser --method M
 * --concept-prompts "a;b" --other-prompts "c;d"`: both lists `;`-separated and non-empty; `params`
 * may hold INLP's `iterations=10` (a whole number ≥ 1) and `min_accuracy=0.55` (0 to 1); LEACE
 * takes none.
 */
export function eraserRequest(
  method: EraserMethod,
  concepts: string,
  others: string,
  params: string,
): { ok: true; request: EraserFitRequest } | Invalid {
  const name = KIND_NAMES[method];
  const c = prompts(concepts);
  if (!c.length) return { ok: false, field: 'concepts', message: `${name} needs concept prompts (with the concept), ";"-separated, e.g. "a skull; a photo of a skull".` };
  const o = prompts(others);
  if (!o.length) return { ok: false, field: 'others', message: `${name} needs other prompts (neutral, without the concept), ";"-separated, e.g. "a star; a photo of a star".` };
  const p = parseParams(params);
  if (!p.ok) return paramsInvalid(p);
  const known = method === 'inlp' ? ['iterations', 'min_accuracy'] : [];
  const unknown = Object.keys(p.params).find((k) => !known.includes(k));
  if (unknown)
    return { ok: false, field: 'params', message: method === 'inlp' ? `unknown INLP parameter \`${unknown}\`: INLP takes iterations=10, min_accuracy=0.55` : `LEACE has no parameter (\`${unknown}\` given): its fit is closed-form` };
  const request: EraserFitRequest = { method, concepts: c, others: o };
  if (p.params.iterations !== undefined) {
    const n = p.params.iterations;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1) return { ok: false, field: 'params', message: `INLP's iterations must be a whole number of at least 1 (got ${String(n)})` };
    request.iterations = n;
  }
  if (p.params.min_accuracy !== undefined) {
    const a = p.params.min_accuracy;
    if (typeof a !== 'number' || a < 0 || a > 1) return { ok: false, field: 'params', message: `INLP's min_accuracy must be a number from 0 to 1 (got ${String(a)})` };
    request.minAccuracy = a;
  }
  return { ok: true, request };
}

/**
 * The Ring-A-Bell request from the panel's fields, as `studio generate --ring-a-bell
 * "with|without;…" --ring-a-bell-eta η`: every `;`-separated pair has a `|`; `params` may hold
 * `eta=3` (any finite number; RECE uses 3 for nudity, 0.9 for Van Gogh).
 */
export function ringABellRequest(pairs: string, params: string): { ok: true; request: RingABellFitRequest } | Invalid {
  const list = prompts(pairs);
  if (!list.length) return { ok: false, field: 'concepts', message: 'Ring-A-Bell needs at least one prompt pair "with the concept|the same prompt without", e.g. "a skull|a star".' };
  const bad = list.find((x) => !x.includes('|'));
  if (bad) return { ok: false, field: 'concepts', message: `Ring-A-Bell pair \`${bad}\` has no \`|\`: write "prompt with the concept|the same prompt without; …"` };
  const p = parseParams(params);
  if (!p.ok) return paramsInvalid(p);
  const unknown = Object.keys(p.params).find((k) => k !== 'eta');
  if (unknown) return { ok: false, field: 'params', message: `unknown Ring-A-Bell parameter \`${unknown}\`: Ring-A-Bell takes eta=3` };
  const request: RingABellFitRequest = { pairs: list.join(';') };
  if (p.params.eta !== undefined) {
    const eta = p.params.eta;
    if (typeof eta !== 'number' || !Number.isFinite(eta)) return { ok: false, field: 'params', message: `Ring-A-Bell's eta must be a number (got ${String(eta)})` };
    request.eta = eta;
  }
  return { ok: true, request };
}

/** ` · SPM m = 0.83` for the edited pane's note (Facilitated Transport's permeabilities). */
export function permeabilityNote(perms: Record<string, number> | undefined, ft: boolean): string {
  const v = Object.values(perms ?? {});
  if (!v.length) return '';
  if (!ft) return ' · FT off';
  return ` · SPM m = ${v.map((x) => x.toFixed(2)).join(', ')}`;
}
