// The erase panel's non-edit entries: SPM / LoRA adapters (dropped or picked `.safetensors`
// files the worker recognises by their kohya `lora_unet_…` tensors) and inference-time
// steering (SLD, SAFREE). They are listed, toggled and compared like edits (web/ui/main.ts); this module
// holds what differs: labels, row details, the steering requests from the form, and the
// Facilitated Transport note.

import { SLD_PRESETS, type EditInfo, type SldPreset, type SteeringRequest } from '../protocol';
import { parseParams } from './logic';

/** Methods of the erase panel's select that add steering instead of computing an edit. */
export const STEERING_METHODS = ['sld', 'safree'] as const;

export function isSteeringMethod(m: string): boolean {
  return (STEERING_METHODS as readonly string[]).includes(m);
}

const KIND_NAMES: Record<string, string> = { spm: 'SPM', lora: 'LoRA', sld: 'SLD', safree: 'SAFREE' };

/** The row title: `SPM: skull` / `LoRA: style.safetensors` / `SLD medium: …`; `null` for an edit. */
export function variantLabel(info: EditInfo): string | null {
  if (!info.kind || info.kind === 'edit') return null;
  const name = KIND_NAMES[info.kind] ?? info.kind;
  if (info.kind === 'sld') return `${name} ${String(info.hyperparameters.preset ?? '')}: ${info.concepts.join(', ')}`;
  if (info.kind === 'safree') return `${name}: ${info.concepts.join(', ')}`;
  return info.concepts.length ? `${name}: ${info.concepts.join(', ')}` : `${name}: ${info.file}`;
}

/** The row's second line and whether it can be exported (only edits are files the page made). */
export function variantDetails(info: EditInfo): { sub: string; exportable: boolean } | null {
  if (!info.kind || info.kind === 'edit') return null;
  if (info.kind === 'sld')
    return { sub: 'inference-time: a third UNet pass on the safety concept steers guidance; weights untouched', exportable: false };
  if (info.kind === 'safree') {
    const h = info.hyperparameters;
    const steps = h.allSteps ? 'every step' : 'the self-validating filter\'s steps';
    return {
      sub: `inference-time: the prompt's trigger tokens are projected off the keywords' subspace (α = ${String(h.alpha)}) for ${steps}; weights untouched`,
      exportable: false,
    };
  }
  const h = info.hyperparameters;
  const layers = Number(h.layers ?? info.tensors.length);
  return {
    sub: `${info.file} · ${layers} layer${layers === 1 ? '' : 's'}, rank ${String(h.rank ?? '?')}, scale ${String(h.scale ?? 1)} · detaching restores the weights bit for bit`,
    exportable: false,
  };
}

/** The status line after an entry was added. */
export function addedStatus(info: EditInfo): string | null {
  if (info.kind === 'spm' || info.kind === 'lora')
    return `Attached ${info.file} (${KIND_NAMES[info.kind]}, ${String(info.hyperparameters.layers ?? '')} layers): on for the next generation.`;
  if (info.kind === 'sld') return `SLD (${String(info.hyperparameters.preset)}) added: it steers the edited variant's runs only.`;
  if (info.kind === 'safree') return `SAFREE added for ${info.concepts.join(', ')}: it steers the edited variant's runs only.`;
  return null;
}

/**
 * The SLD request from the panel's fields, as `studio generate --sld PRESET --sld-concept C`:
 * `concept` is the safety concept as typed (blank: the official list), `params` may hold
 * `preset=weak|medium|strong|max` (default medium).
 */
export function sldRequest(concept: string, params: string): { ok: true; steering: SteeringRequest } | { ok: false; message: string } {
  const p = parseParams(params);
  if (!p.ok) return p;
  const unknown = Object.keys(p.params).find((k) => k !== 'preset');
  if (unknown) return { ok: false, message: `unknown SLD parameter \`${unknown}\`: SLD takes preset=${SLD_PRESETS.join('|')}` };
  const preset = String(p.params.preset ?? 'medium').toLowerCase();
  if (!(SLD_PRESETS as readonly string[]).includes(preset))
    return { ok: false, message: `unknown SLD preset \`${preset}\`: use ${SLD_PRESETS.join(', ')}` };
  const c = concept.trim();
  return { ok: true, steering: { sld: preset as SldPreset, ...(c ? { sldConcept: c } : {}) } };
}

/**
 * The SAFREE request from the panel's fields, as `studio generate --safree "kw1;kw2"
 * [--safree-alpha A] [--safree-all-steps] [--safree-artist]`: `keywords` as typed (`;`-separated,
 * at least one), `params` may hold `alpha=0.01`, `all_steps=true`, `artist=true`.
 */
export function safreeRequest(keywords: string, params: string): { ok: true; steering: SteeringRequest } | { ok: false; message: string } {
  const list = keywords
    .split(';')
    .map((k) => k.trim())
    .filter(Boolean);
  if (!list.length) return { ok: false, message: 'SAFREE needs at least one keyword of the concept to steer away from, e.g. "skull; pirate flag".' };
  const p = parseParams(params);
  if (!p.ok) return p;
  const unknown = Object.keys(p.params).find((k) => !['alpha', 'all_steps', 'artist'].includes(k));
  if (unknown) return { ok: false, message: `unknown SAFREE parameter \`${unknown}\`: SAFREE takes alpha=0.01, all_steps=true|false, artist=true|false` };
  const steering: SteeringRequest = { safree: list.join(';') };
  if (p.params.alpha !== undefined) {
    const a = Number(p.params.alpha);
    if (!Number.isFinite(a) || a <= -1) return { ok: false, message: `SAFREE's alpha must be a number above −1 (got ${String(p.params.alpha)})` };
    steering.safreeAlpha = a;
  }
  for (const [k, key] of [
    ['all_steps', 'safreeAllSteps'],
    ['artist', 'safreeArtist'],
  ] as const) {
    const v = p.params[k];
    if (v === undefined) continue;
    if (typeof v !== 'boolean') return { ok: false, message: `SAFREE's ${k} must be true or false (got ${String(v)})` };
    steering[key] = v;
  }
  return { ok: true, steering };
}

/** The steering request of a steering method of the erase panel. */
export function steeringRequest(method: string, concepts: string, params: string): { ok: true; steering: SteeringRequest } | { ok: false; message: string } {
  return method === 'safree' ? safreeRequest(concepts, params) : sldRequest(concepts, params);
}

/** ` · SPM m = 0.83` for the edited pane's note (Facilitated Transport's permeabilities). */
export function permeabilityNote(perms: Record<string, number> | undefined, ft: boolean): string {
  const v = Object.values(perms ?? {});
  if (!v.length) return '';
  if (!ft) return ' · FT off';
  return ` · SPM m = ${v.map((x) => x.toFixed(2)).join(', ')}`;
}
