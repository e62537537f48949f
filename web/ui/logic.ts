// Pure UI logic (no DOM): form validation, sizes, formatting. Unit-tested in web/tests/.

import { MAX_GUIDANCE, MAX_SEED, MAX_SIDE, MAX_STEPS } from '../generated/limits';
import { SCHEDULERS, type BackendChoice, type GenerateParams, type ModelInfo, type SchedulerName } from '../protocol';

export { MAX_SEED };

/** A fresh seed in [0, 2^32). */
export function randomSeed(rand: () => number = Math.random): number {
  return Math.floor(rand() * (MAX_SEED + 1)) % (MAX_SEED + 1);
}

/** Image sizes offered for a model: multiples of its VAE factor around its training size. */
export function sizeOptions(info: Pick<ModelInfo, 'defaultWidth' | 'sizeMultiple'>): number[] {
  const d = info.defaultWidth;
  const m = info.sizeMultiple;
  const candidates = [d / 2, (d * 3) / 4, d, (d * 5) / 4, (d * 3) / 2, d * 2].map((s) => Math.round(s / m) * m);
  return [...new Set(candidates)].filter((s) => s >= m && s <= MAX_SIDE).sort((a, b) => a - b);
}

export interface FormValues {
  prompt: string;
  negativePrompt: string;
  seed: string;
  steps: string;
  guidance: string;
  size: string;
  scheduler: string;
}

export type Checked = { ok: true; params: GenerateParams } | { ok: false; field: keyof FormValues; message: string };

function int(s: string): number | null {
  if (!/^\s*\d+\s*$/.test(s)) return null;
  const n = Number(s);
  return Number.isSafeInteger(n) ? n : null;
}

/** A form value as a message quotes it: at most 20 characters, `nothing` for an empty field. */
function shown(s: string): string {
  const t = s.trim();
  return t === '' ? 'nothing' : t.length > 20 ? `${t.slice(0, 20)}…` : t;
}

/** Validates the form; messages say what was typed and what to type instead. */
export function checkForm(v: FormValues, info: Pick<ModelInfo, 'sizeMultiple'> | null): Checked {
  const seed = int(v.seed);
  if (seed === null || seed > MAX_SEED) return { ok: false, field: 'seed', message: `Seed must be a whole number from 0 to ${MAX_SEED} (got ${shown(v.seed)}).` };
  const steps = int(v.steps);
  if (steps === null || steps < 1 || steps > MAX_STEPS) return { ok: false, field: 'steps', message: `Steps must be a whole number from 1 to ${MAX_STEPS} (got ${shown(v.steps)}).` };
  const guidance = Number(v.guidance);
  if (v.guidance.trim() === '' || !Number.isFinite(guidance) || guidance < 0 || guidance > MAX_GUIDANCE)
    return { ok: false, field: 'guidance', message: `Guidance must be a number from 0 to ${MAX_GUIDANCE} (got ${shown(v.guidance)}; 7.5 is typical, 1 or less turns it off).` };
  const size = int(v.size);
  const m = info?.sizeMultiple ?? 8;
  if (size === null || size < m || size > MAX_SIDE || size % m !== 0)
    return { ok: false, field: 'size', message: `Size must be a multiple of ${m} pixels from ${m} to ${MAX_SIDE} (got ${shown(v.size)}).` };
  if (!(SCHEDULERS as readonly string[]).includes(v.scheduler))
    return { ok: false, field: 'scheduler', message: `Scheduler must be one of ${SCHEDULERS.join(', ')}.` };
  return {
    ok: true,
    params: {
      prompt: v.prompt,
      negativePrompt: v.negativePrompt,
      seed,
      steps,
      guidance,
      width: size,
      height: size,
      scheduler: v.scheduler as SchedulerName,
    },
  };
}

export function formatMs(ms: number): string {
  if (!Number.isFinite(ms)) return '–';
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 2 : 1)} s`;
  const m = Math.floor(ms / 60_000);
  return `${m} min ${Math.round((ms - m * 60_000) / 1000)} s`;
}

/** Transfer speed, e.g. `12.3 MB/s`. */
export function formatSpeed(bytesPerSec: number): string {
  return bytesPerSec > 0 && Number.isFinite(bytesPerSec) ? `${formatBytes(bytesPerSec)}/s` : '–';
}

/** Concepts typed as `a; b, c` → `['a', 'b', 'c']` (`;` preferred, `,` accepted when there is no `;`). */
export function splitList(s: string): string[] {
  const sep = s.includes(';') ? ';' : ',';
  return s
    .split(sep)
    .map((x) => x.trim())
    .filter((x) => x !== '');
}

/** The A1111-style `parameters` text many tools read from a PNG. */
export function parametersText(p: { prompt: string; negativePrompt: string; steps: number; scheduler: string; guidance: number; seed: number; width: number; height: number }, model: string): string {
  const neg = p.negativePrompt ? `\nNegative prompt: ${p.negativePrompt}` : '';
  return `${p.prompt}${neg}\nSteps: ${p.steps}, Sampler: ${p.scheduler}, CFG scale: ${p.guidance}, Seed: ${p.seed}, Size: ${p.width}x${p.height}, Model: ${model}`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(v < 10 ? 1 : 0)} ${units[i]}`;
}

export const SCHEDULER_LABELS: Record<SchedulerName, string> = {
  ddim: 'DDIM',
  euler: 'Euler',
  'euler-a': 'Euler ancestral',
  lcm: 'LCM',
  dpm: 'DPM-Solver++ 2M',
};

/** Progress as a fraction in [0, 1]. */
export function fraction(step: number, total: number): number {
  return total > 0 ? Math.min(1, Math.max(0, step / total)) : 0;
}

/** The device choice a `?backend=` value names (`cpu`, `webgpu`, `webgpu-f32`; anything else: auto). */
export function backendChoice(v: string | null): BackendChoice {
  return v === 'cpu' || v === 'webgpu' || v === 'webgpu-f32' ? v : 'auto';
}

/**
 * The page's URL settings: `?backend=`, `?model=`, `?tasksMax=` (kernels a WebGPU submit),
 * `?gpuLimits=default` (a WebGPU device with the default limits, as the smallest GPU has: tests)
 * and `?gpuBudget=BYTES` (a stand-in GPU with that much memory: the out-of-memory test).
 */
export interface UrlSettings {
  backend: BackendChoice;
  model: string | null;
  tasksMax: number | undefined;
  gpuLimits: 'default' | undefined;
  gpuBudget: number | undefined;
}

export function urlSettings(search: string): UrlSettings {
  const q = new URLSearchParams(search);
  const t = Number(q.get('tasksMax'));
  return {
    backend: backendChoice(q.get('backend')),
    model: q.get('model'),
    tasksMax: Number.isInteger(t) && t > 0 ? t : undefined,
    gpuLimits: q.get('gpuLimits') === 'default' ? 'default' : undefined,
    gpuBudget: /^\d{1,15}$/.test(q.get('gpuBudget') ?? '') && Number(q.get('gpuBudget')) > 0 ? Number(q.get('gpuBudget')) : undefined,
  };
}

/**
 * Hyper-parameters typed as `lamb=0.5, erase_scale=1, augment=true, tokens=legacy` → an object
 * (numbers and booleans parsed). Names are checked by the engine, which lists the known ones.
 */
export function parseParams(s: string): { ok: true; params: Record<string, number | string | boolean> } | { ok: false; message: string } {
  const params: Record<string, number | string | boolean> = {};
  for (const part of s.split(/[,;\n]/).map((x) => x.trim()).filter((x) => x !== '')) {
    const m = /^([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.+)$/.exec(part);
    if (!m) return { ok: false, message: `"${part}" is not name=value (e.g. lamb=0.5, erase_scale=1)` };
    const v = m[2].trim();
    params[m[1]] = v === 'true' ? true : v === 'false' ? false : /^-?(\d+\.?\d*|\.\d+)(e-?\d+)?$/i.test(v) ? Number(v) : v;
  }
  return { ok: true, params };
}
