import { describe, expect, it } from 'vitest';
import type { EditInfo } from '../protocol';
import { permeabilityNote, safreeRequest, sldRequest, steeringRequest, variantDetails, variantLabel } from '../ui/variants';

const info = (over: Partial<EditInfo>): EditInfo => ({
  id: 'e1',
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
    expect(variantDetails(info({ kind: 'safree', hyperparameters: { alpha: 0.01, allSteps: true } }))?.sub).toMatch(/α = 0.01\) for every step/);
    const d = variantDetails(info({ kind: 'spm', hyperparameters: { layers: 72, rank: 1, scale: 1 } }));
    expect(d?.exportable).toBe(false);
    expect(d?.sub).toMatch(/72 layers, rank 1, scale 1/);
  });
  it('notes the permeabilities', () => {
    expect(permeabilityNote({}, true)).toBe('');
    expect(permeabilityNote({ e1: 0.9174 }, true)).toBe(' · SPM m = 0.92');
    expect(permeabilityNote({ e1: 1 }, false)).toBe(' · FT off');
  });
});
