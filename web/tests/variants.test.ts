import { describe, expect, it } from 'vitest';
import type { EntryInfo } from '../protocol';
import {
  addedStatus,
  eraserRequest,
  isFitMethod,
  isSteeringMethod,
  kindName,
  permeabilityNote,
  ringABellRequest,
  safreeRequest,
  sldRequest,
  steeringRequest,
  variantLabel,
  variantSub,
} from '../ui/variants';

const info = (over: Partial<EntryInfo>): EntryInfo => ({
  id: 'e1',
  kind: 'edit',
  file: 'f.safetensors',
  method: 'uce',
  concepts: [],
  guides: [],
  preserve: [],
  hyperparameters: {},
  tensors: [],
  values: 0,
  baseModel: '',
  warning: null,
  exportable: false,
  ...over,
});

describe('sldRequest', () => {
  it('defaults to medium and the official concept', () => {
    expect(sldRequest('  ', '')).toEqual({ ok: true, steering: { sld: 'medium' } });
    expect(sldRequest('skull', 'preset=MAX')).toEqual({ ok: true, steering: { sld: 'max', sldConcept: 'skull' } });
  });
  it('refuses unknown presets and parameters with the known names', () => {
    const a = sldRequest('', 'preset=extreme');
    expect(a.ok).toBe(false);
    expect(!a.ok && a.message).toMatch(/weak, medium, strong, max/);
    const b = sldRequest('', 'warmup=3');
    expect(!b.ok && b.message).toMatch(/unknown SLD parameter `warmup`/);
  });
});

describe('safreeRequest', () => {
  it('takes the keywords and the CLI defaults', () => {
    expect(safreeRequest(' skull ; pirate flag;; ', '')).toEqual({ ok: true, steering: { safree: 'skull;pirate flag' } });
    expect(safreeRequest('skull', 'alpha=-0.2, all_steps=true, artist=false')).toEqual({
      ok: true,
      steering: { safree: 'skull', safreeAlpha: -0.2, safreeAllSteps: true, safreeArtist: false },
    });
    expect(steeringRequest('safree', 'skull', '')).toEqual({ ok: true, steering: { safree: 'skull' } });
    expect(steeringRequest('sld', 'skull', '')).toEqual({ ok: true, steering: { sld: 'medium', sldConcept: 'skull' } });
  });
  it('refuses what the engine would refuse, saying why', () => {
    const none = safreeRequest(' ; ', '');
    expect(!none.ok && none.message).toMatch(/at least one keyword/);
    const alpha = safreeRequest('skull', 'alpha=-1');
    expect(!alpha.ok && alpha.message).toMatch(/above −1/);
    const flag = safreeRequest('skull', 'all_steps=yes');
    expect(!flag.ok && flag.message).toMatch(/true or false/);
    const unknown = safreeRequest('skull', 'beta=2');
    expect(!unknown.ok && unknown.message).toMatch(/unknown SAFREE parameter `beta`/);
  });
});

describe('variant rows', () => {
  it('labels adapters and steering, leaves edits to the edit code', () => {
    expect(variantLabel(info({}))).toBeNull();
    expect(variantLabel(info({ kind: 'spm', concepts: ['snoopy', 'mickey mouse'] }))).toBe('SPM: snoopy, mickey mouse');
    expect(variantLabel(info({ kind: 'lora', file: 'style.safetensors' }))).toBe('LoRA: style.safetensors');
    expect(variantLabel(info({ kind: 'sld', concepts: ['skull'], hyperparameters: { preset: 'strong' } }))).toBe('SLD strong: skull');
    expect(variantLabel(info({ kind: 'safree', concepts: ['skull', 'pirate flag'] }))).toBe('SAFREE: skull, pirate flag');
    expect(variantSub(info({ kind: 'safree', hyperparameters: { alpha: 0.01, allSteps: true } }))).toMatch(/α = 0.01\) for every step/);
    expect(variantSub(info({ kind: 'spm', hyperparameters: { layers: 72, rank: 1, scale: 1 } }))).toMatch(/72 layers, rank 1, scale 1/);
  });
  it('notes the permeabilities', () => {
    expect(permeabilityNote({}, true)).toBe('');
    expect(permeabilityNote({ e1: 0.9174 }, true)).toBe(' · SPM m = 0.92');
    expect(permeabilityNote({ e1: 1 }, false)).toBe(' · FT off');
  });
});

describe('eraserRequest', () => {
  it('splits the prompt lists on ";" only, as studio fit-eraser "a;b"', () => {
    expect(eraserRequest('leace', ' a skull, detailed ; a photo of a skull;; ', 'a star', '')).toEqual({
      ok: true,
      request: { method: 'leace', concepts: ['a skull, detailed', 'a photo of a skull'], others: ['a star'] },
    });
    expect(eraserRequest('inlp', 'a skull', 'a star; a moon', 'iterations=3, min_accuracy=0.6')).toEqual({
      ok: true,
      request: { method: 'inlp', concepts: ['a skull'], others: ['a star', 'a moon'], iterations: 3, minAccuracy: 0.6 },
    });
  });
  it('refuses what studio fit-eraser refuses, saying what to give', () => {
    const c = eraserRequest('leace', ' ; ', 'a star', '');
    expect(!c.ok && c.message).toMatch(/LEACE needs concept prompts/);
    const o = eraserRequest('inlp', 'a skull', '', '');
    expect(!o.ok && o.message).toMatch(/INLP needs other prompts/);
    const l = eraserRequest('leace', 'a skull', 'a star', 'iterations=3');
    expect(!l.ok && l.message).toMatch(/LEACE has no parameter \(`iterations` given\)/);
    const u = eraserRequest('inlp', 'a skull', 'a star', 'lamb=1');
    expect(!u.ok && u.message).toMatch(/unknown INLP parameter `lamb`: INLP takes iterations=10, min_accuracy=0.55/);
    for (const bad of ['iterations=0', 'iterations=2.5', 'iterations=many']) {
      const r = eraserRequest('inlp', 'a skull', 'a star', bad);
      expect(!r.ok && r.message).toMatch(/whole number of at least 1/);
    }
    const a = eraserRequest('inlp', 'a skull', 'a star', 'min_accuracy=1.5');
    expect(!a.ok && a.message).toMatch(/from 0 to 1 \(got 1.5\)/);
  });
});

describe('ringABellRequest', () => {
  it('takes "with|without" pairs and eta, as --ring-a-bell / --ring-a-bell-eta', () => {
    expect(ringABellRequest(' a skull | a star ; a big skull|a big star ;', '')).toEqual({ ok: true, request: { pairs: 'a skull | a star;a big skull|a big star' } });
    expect(ringABellRequest('a skull|a star', 'eta=0.9')).toEqual({ ok: true, request: { pairs: 'a skull|a star', eta: 0.9 } });
  });
  it('names the pair without "|" and bad settings', () => {
    const p = ringABellRequest('a skull|a star; a moon', '');
    expect(!p.ok && p.message).toMatch(/pair `a moon` has no `\|`/);
    const e = ringABellRequest(' ; ', '');
    expect(!e.ok && e.message).toMatch(/at least one prompt pair/);
    const eta = ringABellRequest('a|b', 'eta=big');
    expect(!eta.ok && eta.message).toMatch(/eta must be a number \(got big\)/);
    const u = ringABellRequest('a|b', 'strength=2');
    expect(!u.ok && u.message).toMatch(/unknown Ring-A-Bell parameter `strength`/);
  });
});

describe('erasers and probes as variant rows', () => {
  // Rows as the Session sends them (studio_wasm::variants::EntryInfo::steerer; its mapping is tested in Rust).
  const leace = info({
    id: 'e3',
    kind: 'leace',
    method: 'leace',
    file: 'leace-a-skull.safetensors',
    concepts: ['a skull', 'a big skull'],
    hyperparameters: { svd_tol: 0.01, samples: 228, rank: 1, dText: 32, others: ['a star'] },
    tensors: ['proj_left', 'proj_right', 'bias'],
    values: 2 * 32 + 32,
    exportable: true,
  });
  it('labels a session eraser', () => {
    expect(variantLabel(leace)).toBe('LEACE: a skull, a big skull');
    expect(variantSub(leace)).toMatch(/^leace-a-skull\.safetensors · rank 1 of 32 · 2 concept \/ 1 other prompt · inference-time/);
    expect(addedStatus(leace)).toMatch(/LEACE eraser leace-a-skull\.safetensors \(rank 1\) ready.*studio generate --leace/);
    expect(kindName(leace)).toBe('LEACE');
  });
  it('labels a Ring-A-Bell probe', () => {
    const rab = info({ id: 'e5', kind: 'ring-a-bell', method: 'ring-a-bell', file: 'Ring-A-Bell η = 3', concepts: ['a skull'], hyperparameters: { eta: 3, others: ['a star'] } });
    expect(variantLabel(rab)).toBe('Ring-A-Bell η = 3: a skull');
    expect(variantSub(rab)).toMatch(/1 prompt pair; combine it with an erasure/);
    expect(addedStatus(rab)).toBe("Ring-A-Bell probe (η = 3) added: it attacks the edited variant's prompt.");
    expect(kindName(info({ method: 'uce' }))).toBe('UCE');
  });
  it('tells fit methods from steering methods', () => {
    expect(['leace', 'inlp', 'ring-a-bell'].every(isFitMethod)).toBe(true);
    expect(isFitMethod('safree') || isSteeringMethod('leace') || isFitMethod('uce')).toBe(false);
  });
});

describe('the field a refused request is in', () => {
  // The erase panel marks the input these name (no matching of message text).
  const field = (r: { ok: boolean; field?: string }) => (r.ok ? null : r.field);
  it('names the concepts, the other prompts or the hyper-parameters', () => {
    expect(field(eraserRequest('leace', ' ; ', 'a star', ''))).toBe('concepts');
    expect(field(eraserRequest('inlp', 'a skull', '', ''))).toBe('others');
    expect(field(eraserRequest('leace', 'a skull', 'a star', 'iterations=3'))).toBe('params');
    expect(field(eraserRequest('inlp', 'a skull', 'a star', 'min_accuracy=1.5'))).toBe('params');
    expect(field(eraserRequest('inlp', 'a skull', 'a star', 'other prompts'))).toBe('params');
    expect(field(ringABellRequest('a skull|a star; a moon', ''))).toBe('concepts');
    expect(field(ringABellRequest(' ; ', ''))).toBe('concepts');
    expect(field(ringABellRequest('a|b', 'eta=big'))).toBe('params');
    expect(field(ringABellRequest('a|b', 'a pair'))).toBe('params');
    expect(field(steeringRequest('sld', '', 'preset=huge'))).toBe('params');
    expect(field(steeringRequest('safree', ' ; ', ''))).toBe('concepts');
    expect(field(steeringRequest('safree', 'skull', 'alpha=-2'))).toBe('params');
  });
});
