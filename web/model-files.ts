// Which files of a picked folder a model load needs. Mirrors the Rust loader's rules
// (crates/pipeline/src/model.rs, crates/studio-wasm/src/files.rs) so that a multi-gigabyte folder
// with .bin/.ckpt duplicates or fp16 variants is not read in full.

export const COMPONENTS = ['text_encoder', 'tokenizer', 'unet', 'vae', 'scheduler'] as const;
/** Without these nothing runs; a missing tokenizer/ falls back to the built-in CLIP vocabulary. */
export const REQUIRED = ['text_encoder', 'unet', 'vae', 'scheduler'] as const;

export interface Picked<T> {
  path: string;
  item: T;
}

export interface Selection<T> {
  files: Picked<T>[];
  skipped: { path: string; why: string }[];
  missing: string[];
}

/** Cleans paths and strips the picked folder's own name (`sd15/unet/x` → `unet/x`). */
export function normalizePaths(paths: string[]): string[] {
  const clean = paths.map((p) => p.replace(/\\/g, '/').replace(/^(\.\/)+/, '').replace(/^\/+/, ''));
  const topLevel = clean.some((p) => {
    const first = p.split('/')[0];
    return (COMPONENTS as readonly string[]).includes(first) || p === 'model_index.json';
  });
  const firsts = clean.map((p) => (p.includes('/') ? p.split('/')[0] : null));
  const first = firsts[0];
  const shared = !topLevel && first != null && firsts.every((f) => f === first);
  return shared ? clean.map((p) => p.slice(first!.length + 1)) : clean;
}

/** Picks the files a load reads; reports what it skips and which required components are absent. */
export function selectModelFiles<T>(entries: { path: string; item: T }[]): Selection<T> {
  const paths = normalizePaths(entries.map((e) => e.path));
  const all = entries.map((e, i) => ({ path: paths[i], item: e.item }));
  const files: Picked<T>[] = [];
  const skipped: { path: string; why: string }[] = [];
  for (const e of all) {
    const parts = e.path.split('/');
    const base = parts[parts.length - 1];
    if (parts.length === 1) {
      // studio.json: the folder's recommended guidance and steps (pipeline::StudioJson).
      if (base === 'model_index.json' || base === 'studio.json') files.push(e);
      continue;
    }
    if (parts.length !== 2 || !(COMPONENTS as readonly string[]).includes(parts[0])) continue;
    const comp = parts[0];
    if (comp === 'tokenizer' || base.endsWith('.json') || base.endsWith('.txt')) {
      files.push(e);
      continue;
    }
    if (!base.endsWith('.safetensors')) {
      skipped.push({ path: e.path, why: 'only .safetensors weights are read' });
      continue;
    }
    // The Rust loader prefers `x.safetensors` over variants such as `x.fp16.safetensors`.
    const isPlain = base.split('.').length === 2;
    const hasPlain = all.some((o) => {
      const op = o.path.split('/');
      return op.length === 2 && op[0] === comp && op[1].endsWith('.safetensors') && op[1].split('.').length === 2;
    });
    if (!isPlain && hasPlain) {
      skipped.push({ path: e.path, why: 'a full-precision file of the same weights is used instead' });
      continue;
    }
    files.push(e);
  }
  const missing = REQUIRED.filter((c) => !files.some((f) => f.path.startsWith(`${c}/`)));
  return { files, skipped, missing };
}

export function missingMessage(missing: string[], present: string[]): string {
  const have = [...new Set(present.map((p) => p.split('/')[0]))].sort();
  return (
    `The model folder has no ${missing.map((m) => `${m}/`).join(', ')}. ` +
    `A diffusers Stable Diffusion folder needs text_encoder/, tokenizer/, unet/, vae/ and scheduler/ ` +
    `(this one has: ${have.length ? have.join(', ') : 'nothing'}).`
  );
}
