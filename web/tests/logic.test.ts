import { describe, expect, it } from 'vitest';
import { MAX_SEED, checkForm, formatBytes, formatMs, fraction, randomSeed, sizeOptions, urlSettings, type FormValues } from '../ui/logic';
import { missingMessage, normalizePaths, selectModelFiles } from '../model-files';

const form = (o: Partial<FormValues> = {}): FormValues => ({
  prompt: 'a red star',
  negativePrompt: '',
  seed: '42',
  steps: '20',
  guidance: '7.5',
  size: '512',
  scheduler: 'ddim',
  ...o,
});

describe('checkForm', () => {
  it('turns the form into generation parameters', () => {
    const r = checkForm(form({ negativePrompt: 'blurry', scheduler: 'euler-a' }), { sizeMultiple: 8 });
    expect(r).toEqual({
      ok: true,
      params: { prompt: 'a red star', negativePrompt: 'blurry', seed: 42, steps: 20, guidance: 7.5, width: 512, height: 512, scheduler: 'euler-a' },
    });
  });

  it('names the field and says what to type', () => {
    const cases: [Partial<FormValues>, string, RegExp][] = [
      [{ seed: '-1' }, 'seed', /whole number from 0 to 4294967295/],
      [{ seed: '4294967296' }, 'seed', /0 to 4294967295/],
      [{ seed: '1.5' }, 'seed', /whole number/],
      [{ steps: '0' }, 'steps', /1 to 500 \(got 0\)/],
      [{ steps: '' }, 'steps', /1 to 500 \(got nothing\)/],
      [{ guidance: 'abc' }, 'guidance', /0 to 50 \(got abc;/],
      [{ guidance: '' }, 'guidance', /0 to 50/],
      [{ size: '500' }, 'size', /multiple of 8 pixels from 8 to 2048 \(got 500\)/],
      [{ seed: '9'.repeat(40) }, 'seed', /got 9{20}…\)/],
      [{ scheduler: 'pndm' }, 'scheduler', /ddim, euler, euler-a, lcm, dpm/],
    ];
    for (const [o, field, msg] of cases) {
      const r = checkForm(form(o), { sizeMultiple: 8 });
      expect(r.ok, JSON.stringify(o)).toBe(false);
      if (!r.ok) {
        expect(r.field).toBe(field);
        expect(r.message).toMatch(msg);
      }
    }
  });

  it('uses the model size multiple', () => {
    expect(checkForm(form({ size: '18' }), { sizeMultiple: 2 }).ok).toBe(true);
    expect(checkForm(form({ size: '18' }), { sizeMultiple: 8 }).ok).toBe(false);
  });
});

describe('sizeOptions', () => {
  it('offers multiples of the VAE factor around the native size', () => {
    expect(sizeOptions({ defaultWidth: 512, sizeMultiple: 8 })).toEqual([256, 384, 512, 640, 768, 1024]);
    expect(sizeOptions({ defaultWidth: 16, sizeMultiple: 2 })).toEqual([8, 12, 16, 20, 24, 32]);
    expect(sizeOptions({ defaultWidth: 64, sizeMultiple: 8 })).toEqual([32, 48, 64, 80, 96, 128]);
  });
});

describe('randomSeed', () => {
  it('stays in [0, 2^32)', () => {
    expect(randomSeed(() => 0)).toBe(0);
    expect(randomSeed(() => 0.999999999999)).toBe(MAX_SEED);
    for (let i = 0; i < 1000; i++) {
      const s = randomSeed();
      expect(Number.isInteger(s) && s >= 0 && s <= MAX_SEED).toBe(true);
    }
  });
});

describe('formatting', () => {
  it('formats durations, sizes and fractions', () => {
    expect(formatMs(0.5)).toBe('0.50 ms');
    expect(formatMs(45.2)).toBe('45 ms');
    expect(formatMs(1234)).toBe('1.23 s');
    expect(formatMs(75_000)).toBe('1 min 15 s');
    expect(formatBytes(512)).toBe('512 B');
    expect(formatBytes(7_581_000)).toBe('7.6 MB');
    expect(formatBytes(1_720_000_000)).toBe('1.7 GB');
    expect(fraction(3, 20)).toBe(0.15);
    expect(fraction(5, 0)).toBe(0);
  });
  it('reads the URL settings', () => {
    expect(urlSettings('?backend=cpu&model=tiny-sd1')).toEqual({ backend: 'cpu', model: 'tiny-sd1', tasksMax: undefined });
    expect(urlSettings('?tasksMax=128')).toEqual({ backend: 'auto', model: null, tasksMax: 128 });
    expect(urlSettings('?backend=webgpu-f32').backend).toBe('webgpu-f32');
    expect(urlSettings('?backend=webgpu').backend).toBe('webgpu');
    expect(urlSettings('?backend=f64').backend).toBe('auto');
    expect(urlSettings('?gpuBudget=300000000').gpuBudget).toBe(300000000);
    expect(urlSettings('?gpuBudget=-1').gpuBudget).toBeUndefined();
    expect(urlSettings('?gpuBudget=1e9').gpuBudget).toBeUndefined();
    expect(urlSettings('?tasksMax=-1')).toEqual({ backend: 'auto', model: null, tasksMax: undefined });
  });
});

describe('selectModelFiles', () => {
  const folder = [
    'sd/model_index.json',
    'sd/README.md',
    'sd/unet/config.json',
    'sd/unet/diffusion_pytorch_model.safetensors',
    'sd/unet/diffusion_pytorch_model.fp16.safetensors',
    'sd/unet/diffusion_pytorch_model.bin',
    'sd/vae/config.json',
    'sd/vae/diffusion_pytorch_model.fp16.safetensors',
    'sd/text_encoder/config.json',
    'sd/text_encoder/model.safetensors',
    'sd/tokenizer/vocab.json',
    'sd/tokenizer/merges.txt',
    'sd/scheduler/scheduler_config.json',
    'sd/safety_checker/model.safetensors',
  ].map((path) => ({ path, item: path }));

  it('reads what the loader needs and nothing else', () => {
    const s = selectModelFiles(folder);
    expect(s.missing).toEqual([]);
    expect(s.files.map((f) => f.path).sort()).toEqual(
      [
        'model_index.json',
        'unet/config.json',
        'unet/diffusion_pytorch_model.safetensors',
        'vae/config.json',
        'vae/diffusion_pytorch_model.fp16.safetensors',
        'text_encoder/config.json',
        'text_encoder/model.safetensors',
        'tokenizer/vocab.json',
        'tokenizer/merges.txt',
        'scheduler/scheduler_config.json',
      ].sort(),
    );
    expect(s.skipped.map((x) => x.path).sort()).toEqual(['unet/diffusion_pytorch_model.bin', 'unet/diffusion_pytorch_model.fp16.safetensors']);
  });

  it('reports missing components', () => {
    const s = selectModelFiles(folder.filter((f) => !f.path.startsWith('sd/vae/')));
    expect(s.missing).toEqual(['vae']);
    const msg = missingMessage(s.missing, s.files.map((f) => f.path));
    expect(msg).toContain('has no vae/');
    expect(msg).toContain('model_index.json, scheduler, text_encoder, tokenizer, unet');
  });

  it('keeps paths that already start at the model root', () => {
    expect(normalizePaths(['unet/config.json', './vae/a'])).toEqual(['unet/config.json', 'vae/a']);
    expect(normalizePaths(['a/unet/x', 'b/vae/y'])).toEqual(['a/unet/x', 'b/vae/y']);
  });
});
