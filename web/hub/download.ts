// Downloads a diffusers model from the Hugging Face hub (or any server with the hub's URL
// layout) into the cache, file by file, with progress, resume and SHA-256 verification.
//
// Hub URLs (the layout huggingface_hub uses): the file list with sizes and LFS SHA-256 from
// `{endpoint}/api/models/{repo}/tree/{revision}?recursive=true` (paginated with a `Link` header),
// each file from `{endpoint}/{repo}/resolve/{revision}/{path}` (Range requests honoured).
// Tests point `endpoint` at a local mirror served by vite (vite.config.ts), never the network.

import { CPU_WEIGHT_LIMIT } from '../generated/limits';
import { COMPONENTS, REQUIRED } from '../model-files';
import { Sha256 } from './sha256';
import { cacheKey, type CacheMeta, type Store } from './store';

export interface RemoteFile {
  path: string;
  size: number | null;
  /** LFS SHA-256 listed by the hub (weights); null for small git files (configs). */
  sha256: string | null;
}

export type FileState = 'queued' | 'cached' | 'downloading' | 'verifying' | 'done' | 'failed';

export interface FileProgress {
  path: string;
  size: number | null;
  loaded: number;
  state: FileState;
  /** Over the last ~second, bytes/s. */
  bytesPerSec: number;
  /** Bytes already on disk when this download started (a resumed download). */
  resumedFrom: number;
  verified: CacheMeta['verified'];
}

export class HubError extends Error {}

type FetchFn = (url: string, init?: RequestInit) => Promise<Response>;

const WEIGHT_EXT = '.safetensors';

/** Lists a repo's files (all pages). */
export async function listRepo(endpoint: string, repo: string, revision: string, fetchFn: FetchFn = fetch): Promise<RemoteFile[]> {
  let url: string | null = `${endpoint.replace(/\/$/, '')}/api/models/${repo}/tree/${encodeURIComponent(revision)}?recursive=true`;
  const out: RemoteFile[] = [];
  for (let page = 0; url && page < 50; page++) {
    let res: Response;
    try {
      res = await fetchFn(url);
    } catch (e) {
      throw new HubError(`could not reach ${new URL(url).host} to list ${repo} (${e instanceof Error ? e.message : String(e)}): check the connection`);
    }
    if (res.status === 401 || res.status === 403)
      throw new HubError(`the hub refused to list ${repo} (HTTP ${res.status}): it may be private or gated; open ${endpoint}/${repo} to request access`);
    if (res.status === 404) throw new HubError(`${repo} (revision ${revision}) does not exist on ${endpoint}: check the model id`);
    if (!res.ok) throw new HubError(`listing ${repo} failed: HTTP ${res.status} ${res.statusText}`);
    const items = (await res.json()) as unknown;
    if (!Array.isArray(items)) throw new HubError(`the hub's file list of ${repo} is not a list`);
    for (const it of items as Record<string, unknown>[]) {
      if (it?.type !== 'file' || typeof it.path !== 'string') continue;
      const lfs = it.lfs as Record<string, unknown> | undefined;
      const sha = typeof lfs?.oid === 'string' && /^[0-9a-f]{64}$/.test(lfs.oid) ? lfs.oid : null;
      out.push({ path: it.path, size: typeof it.size === 'number' ? it.size : null, sha256: sha });
    }
    const next = /<([^>]+)>;\s*rel="next"/.exec(res.headers.get('link') ?? '');
    url = next ? new URL(next[1], url).href : null;
  }
  return out;
}

/**
 * The files a text-to-image load needs: `model_index.json`, configs and tokenizer files, and one
 * set of weights per component: fp16 variants when the repo has them (half the download; the
 * loader reads f16), else the plain `.safetensors`. `.bin`/`.ckpt`/ONNX/Flax files and other
 * folders (safety_checker, feature_extractor) are skipped.
 */
export function chooseFiles(files: RemoteFile[]): { files: RemoteFile[]; missing: string[]; bytes: number } {
  const chosen: RemoteFile[] = [];
  for (const comp of COMPONENTS) {
    const inComp = files.filter((f) => f.path.startsWith(`${comp}/`) && f.path.split('/').length === 2);
    for (const f of inComp) if (comp === 'tokenizer' || /\.(json|txt)$/.test(f.path)) chosen.push(f);
    const weights = inComp.filter((f) => f.path.endsWith(WEIGHT_EXT));
    const variant = (f: RemoteFile) => {
      const parts = f.path.split('/')[1].split('.');
      return parts.length === 2 ? '' : parts.slice(1, -1).join('.');
    };
    const fp16 = weights.filter((f) => /^fp16(-\d+-of-\d+)?$/.test(variant(f)));
    const plain = weights.filter((f) => variant(f) === '');
    chosen.push(...(fp16.length ? fp16 : plain));
  }
  const index = files.find((f) => f.path === 'model_index.json');
  if (index) chosen.unshift(index);
  const unique = [...new Map(chosen.map((f) => [f.path, f])).values()];
  const missing = REQUIRED.filter((c) =>
    c === 'scheduler' ? !unique.some((f) => f.path === 'scheduler/scheduler_config.json') : !unique.some((f) => f.path.startsWith(`${c}/`) && f.path.endsWith(WEIGHT_EXT)),
  );
  return { files: unique, missing, bytes: unique.reduce((a, f) => a + (f.size ?? 0), 0) };
}

/** Most f32 weight bytes the CPU path holds: `CPU_WEIGHT_LIMIT` of crates/erasure/src/request/limits.rs. */
export { CPU_WEIGHT_LIMIT };

/** The chosen weights' size once loaded as f32 (fp16 variants double), bytes. */
export function f32WeightBytes(files: RemoteFile[]): number {
  return files.filter((f) => f.path.endsWith(WEIGHT_EXT)).reduce((a, f) => a + (f.size ?? 0) * (/\.fp16(-\d+-of-\d+)?\.safetensors$/.test(f.path) ? 2 : 1), 0);
}

/** Why a model is refused on the CPU path before anything is downloaded, or null when it fits. */
export function cpuRefusal(repo: string, files: RemoteFile[]): string | null {
  const need = f32WeightBytes(files);
  if (need <= CPU_WEIGHT_LIMIT) return null;
  return (
    `${repo} needs about ${(need / 1e9).toFixed(1)} GB of weights as f32: more than the CPU path can hold in a browser tab ` +
    `(WebAssembly memory stops at 4 GB, and images need room too; the limit is ${(CPU_WEIGHT_LIMIT / 1e9).toFixed(1)} GB of weights). ` +
    'Nothing was downloaded. Use WebGPU (Device: Auto on a machine with a GPU, or WebGPU), or a smaller model such as the classroom model or BK-SDM-Tiny'
  );
}

export interface DownloadOptions {
  endpoint: string;
  repo: string;
  revision: string;
  files: RemoteFile[];
  store: Store;
  fetchFn?: FetchFn;
  /** path → SHA-256 pinned by the studio (wins over the hub's listing). */
  pinned?: Record<string, string>;
  onProgress?: (files: FileProgress[]) => void;
  signal?: AbortSignal;
  /** Make the bytes durable every this many bytes (default 16 MB) or every second, whichever comes first. */
  flushEvery?: number;
  now?: () => number;
}

export function resolveUrl(endpoint: string, repo: string, revision: string, path: string): string {
  return `${endpoint.replace(/\/$/, '')}/${repo}/resolve/${encodeURIComponent(revision)}/${path.split('/').map(encodeURIComponent).join('/')}`;
}

/**
 * The first bytes of a safetensors file on the hub: its 8-byte header length and JSON header
 * (two Range requests), for checking a model before downloading it.
 */
export async function fetchHeaderPrefix(url: string, path: string, fetchFn: FetchFn = fetch): Promise<Uint8Array> {
  const range = async (from: number, to: number): Promise<Uint8Array> => {
    const res = await fetchFn(url, { headers: { Range: `bytes=${from}-${to}` } });
    if (!res.ok) throw new HubError(`could not read the header of ${path}: HTTP ${res.status} ${res.statusText}`);
    const b = new Uint8Array(await res.arrayBuffer());
    // A server that ignores Range sends the whole file: keep only what was asked.
    return res.status === 206 ? b : b.subarray(from, to + 1);
  };
  const head = await range(0, 7);
  if (head.length < 8) throw new HubError(`${path} is shorter than a safetensors header (${head.length} bytes)`);
  const n = Number(new DataView(head.buffer, head.byteOffset, 8).getBigUint64(0, true));
  if (n > 100_000_000) throw new HubError(`${path}: header length ${n} is implausible (not a safetensors file)`);
  if (n === 0) return head.subarray(0, 8);
  const json = await range(8, 8 + n - 1);
  const out = new Uint8Array(8 + json.length);
  out.set(head.subarray(0, 8));
  out.set(json, 8);
  return out;
}

/** Downloads every file that is not complete in the cache; resolves when all are complete and verified. */
export async function downloadRepo(o: DownloadOptions): Promise<FileProgress[]> {
  const fetchFn = o.fetchFn ?? fetch;
  const now = o.now ?? (() => performance.now());
  const progress: FileProgress[] = o.files.map((f) => ({ path: f.path, size: f.size, loaded: 0, state: 'queued', bytesPerSec: 0, resumedFrom: 0, verified: null }));
  let lastReport = -Infinity;
  const report = (force = false) => {
    const t = now();
    if (force || t - lastReport > 150) {
      lastReport = t;
      o.onProgress?.(progress.map((p) => ({ ...p })));
    }
  };
  for (let i = 0; i < o.files.length; i++) {
    const f = o.files[i];
    const p = progress[i];
    const key = cacheKey(o.endpoint, o.repo, o.revision, f.path);
    const expected = o.pinned?.[f.path] ?? f.sha256;
    const verifiedBy: CacheMeta['verified'] = o.pinned?.[f.path] ? 'pinned' : f.sha256 ? 'hub' : 'size';
    const meta = await o.store.getMeta(key);
    const onDisk = meta ? await o.store.size(key) : 0;
    if (meta?.complete && (f.size === null || (meta.size === f.size && onDisk === f.size)) && (expected === null || meta.sha256 === expected)) {
      Object.assign(p, { state: 'cached', loaded: onDisk, verified: meta.verified });
      report(true);
      continue;
    }
    // Resume only a partial file of the same expected content.
    let have = meta && !meta.complete && meta.expectedSha256 === expected && meta.size === f.size ? onDisk : 0;
    let hasher = new Sha256();
    if (have > 0) {
      // Re-hash what is on disk, in slices, so the digest covers the whole file.
      for (let at = 0; at < have; at += 16 << 20) hasher.update(await o.store.read(key, at, Math.min(have, at + (16 << 20))));
    }
    const base: CacheMeta = {
      key,
      endpoint: o.endpoint,
      repo: o.repo,
      revision: o.revision,
      path: f.path,
      size: f.size,
      complete: false,
      expectedSha256: expected,
      sha256: null,
      verified: null,
      etag: null,
      updated: Date.now(),
    };
    const url = resolveUrl(o.endpoint, o.repo, o.revision, f.path);
    let res: Response;
    try {
      res = await fetchFn(url, { headers: have > 0 ? { Range: `bytes=${have}-` } : {}, signal: o.signal });
    } catch (e) {
      p.state = 'failed';
      report(true);
      throw new HubError(`could not download ${f.path} (${e instanceof Error ? e.message : String(e)}); what arrived is kept: load again to resume`);
    }
    if (have > 0 && res.status === 416 && f.size !== null && have === f.size) {
      res = new Response(new Uint8Array(0), { status: 206 });
    } else if (have > 0 && res.status !== 206) {
      // The server ignored the range: start over.
      have = 0;
      hasher = new Sha256();
    }
    if (!res.ok) {
      p.state = 'failed';
      report(true);
      const hint = res.status === 401 || res.status === 403 ? ': the model may be gated; accept its licence on the hub first' : '';
      throw new HubError(`downloading ${f.path} failed: HTTP ${res.status} ${res.statusText}${hint}`);
    }
    await o.store.putMeta({ ...base, etag: res.headers.get('etag') });
    const writer = await o.store.writer(key, have);
    Object.assign(p, { state: 'downloading', loaded: have, resumedFrom: have });
    report(true);
    let sinceFlush = 0;
    let lastFlush = now();
    const window: [number, number][] = [[now(), have]];
    try {
      if (res.body) {
        const reader = res.body.getReader();
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          await writer.write(value);
          hasher.update(value);
          p.loaded += value.length;
          sinceFlush += value.length;
          const t = now();
          if (sinceFlush >= (o.flushEvery ?? 16 << 20) || t - lastFlush > 1000) {
            await writer.flush();
            sinceFlush = 0;
            lastFlush = t;
          }
          window.push([t, p.loaded]);
          while (window.length > 2 && t - window[0][0] > 1000) window.shift();
          const [t0, b0] = window[0];
          p.bytesPerSec = t > t0 ? ((p.loaded - b0) * 1000) / (t - t0) : 0;
          report();
        }
      }
    } catch (e) {
      await writer.close().catch(() => {});
      p.state = 'failed';
      report(true);
      throw new HubError(`the download of ${f.path} stopped at ${p.loaded} bytes (${e instanceof Error ? e.message : String(e)}); what arrived is kept: load again to resume`);
    }
    await writer.close();
    if (f.size !== null && p.loaded !== f.size) {
      p.state = 'failed';
      report(true);
      throw new HubError(`${f.path} arrived with ${p.loaded} bytes, the hub lists ${f.size}: load again to resume`);
    }
    p.state = 'verifying';
    report(true);
    const digest = hasher.hex();
    if (expected !== null && digest !== expected) {
      await o.store.remove(key);
      p.state = 'failed';
      report(true);
      throw new HubError(
        `${f.path} failed its SHA-256 check (expected ${expected}, got ${digest}); the bad copy was deleted: load again to download it afresh`,
      );
    }
    await o.store.putMeta({ ...base, size: p.loaded, complete: true, sha256: digest, verified: verifiedBy, etag: res.headers.get('etag'), updated: Date.now() });
    Object.assign(p, { state: 'done', verified: verifiedBy, bytesPerSec: p.bytesPerSec });
    report(true);
  }
  return progress.map((x) => ({ ...x }));
}

/** The complete cached files of `repo@revision` (offline use when the hub cannot be listed). */
export async function cachedFiles(store: Store, endpoint: string, repo: string, revision: string): Promise<RemoteFile[]> {
  const prefix = cacheKey(endpoint, repo, revision, '');
  return (await store.list())
    .filter((m) => m.key.startsWith(prefix) && m.complete)
    .map((m) => ({ path: m.path, size: m.size, sha256: m.expectedSha256 }));
}
