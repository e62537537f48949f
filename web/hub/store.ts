// Where downloaded model files live between visits: the Origin Private File System (OPFS).
//
// Why OPFS and not the Cache API: a download must survive a reload *half way* and resume with
// an HTTP Range request. The Cache API stores only whole responses; in a worker, an OPFS sync
// access handle writes straight to the file, so the bytes on disk are the bytes received. Each
// file has a small JSON record next to it (`CacheMeta`): complete or not, expected and actual
// SHA-256, size. `MemoryStore` is the same contract in memory, for unit tests (Node has no OPFS).

export interface CacheMeta {
  key: string;
  endpoint: string;
  repo: string;
  revision: string;
  path: string;
  /** Expected size (from the hub's listing), when known. */
  size: number | null;
  complete: boolean;
  /** The SHA-256 the file must have (pinned or listed by the hub), when known. */
  expectedSha256: string | null;
  /** The SHA-256 of the complete file. */
  sha256: string | null;
  /** What the file was checked against. */
  verified: 'pinned' | 'hub' | 'size' | null;
  etag: string | null;
  updated: number;
}

export interface Writer {
  write(chunk: Uint8Array): Promise<void>;
  /** Makes what was written so far durable (a reload resumes from here). */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export interface Store {
  getMeta(key: string): Promise<CacheMeta | null>;
  putMeta(meta: CacheMeta): Promise<void>;
  /** Bytes of `key` on disk (0 when absent). */
  size(key: string): Promise<number>;
  read(key: string, start?: number, end?: number): Promise<Uint8Array>;
  /** The file of `key` as a `Blob` (OPFS: the file on disk, read by ranges by whoever slices it). */
  blob(key: string): Promise<Blob>;
  /** A writer that keeps the first `at` bytes and writes from there. */
  writer(key: string, at: number): Promise<Writer>;
  remove(key: string): Promise<void>;
  list(): Promise<CacheMeta[]>;
}

export function cacheKey(endpoint: string, repo: string, revision: string, path: string): string {
  const host = (() => {
    try {
      return new URL(endpoint).host;
    } catch {
      return endpoint;
    }
  })();
  return `${host}/${repo}@${revision}/${path}`;
}

export class MemoryStore implements Store {
  files = new Map<string, Uint8Array>();
  metas = new Map<string, CacheMeta>();
  async getMeta(key: string) {
    const m = this.metas.get(key);
    return m ? { ...m } : null;
  }
  async putMeta(meta: CacheMeta) {
    this.metas.set(meta.key, { ...meta });
  }
  async size(key: string) {
    return this.files.get(key)?.length ?? 0;
  }
  async read(key: string, start = 0, end?: number) {
    const f = this.files.get(key);
    if (!f) throw new Error(`${key} is not in the cache`);
    return f.slice(start, end ?? f.length);
  }
  async blob(key: string) {
    const f = this.files.get(key);
    if (!f) throw new Error(`${key} is not in the cache`);
    return new Blob([f.slice()]);
  }
  async writer(key: string, at: number): Promise<Writer> {
    let data = (this.files.get(key) ?? new Uint8Array(0)).slice(0, at);
    this.files.set(key, data);
    return {
      write: async (chunk) => {
        const next = new Uint8Array(data.length + chunk.length);
        next.set(data);
        next.set(chunk, data.length);
        data = next;
        this.files.set(key, data);
      },
      flush: async () => {},
      close: async () => {},
    };
  }
  async remove(key: string) {
    this.files.delete(key);
    this.metas.delete(key);
  }
  async list() {
    return [...this.metas.values()].map((m) => ({ ...m }));
  }
}

const DIR = 'erasure-studio-hub';
/** A file name for a key (OPFS names cannot hold `/`). */
const fileName = (key: string) => encodeURIComponent(key);
const metaName = (key: string) => `${fileName(key)}.meta.json`;

/** Minimal typings of the OPFS calls used here (not all are in TypeScript's DOM lib yet). */
interface SyncHandle {
  write(buf: Uint8Array, opts: { at: number }): number;
  truncate(n: number): void;
  flush(): void;
  close(): void;
}
type FileHandle = FileSystemFileHandle & { createSyncAccessHandle?: () => Promise<SyncHandle> };
type DirHandle = FileSystemDirectoryHandle & { values(): AsyncIterable<FileSystemHandle> };

export async function opfsAvailable(): Promise<boolean> {
  try {
    return typeof navigator !== 'undefined' && !!navigator.storage?.getDirectory && !!(await navigator.storage.getDirectory());
  } catch {
    return false;
  }
}

export class OpfsStore implements Store {
  private dir: Promise<DirHandle>;
  constructor() {
    this.dir = navigator.storage.getDirectory().then((root) => root.getDirectoryHandle(DIR, { create: true })) as Promise<DirHandle>;
  }
  private async file(name: string, create = false): Promise<FileHandle | null> {
    try {
      return (await (await this.dir).getFileHandle(name, { create })) as FileHandle;
    } catch {
      return null;
    }
  }
  async getMeta(key: string) {
    const h = await this.file(metaName(key));
    if (!h) return null;
    try {
      return JSON.parse(await (await h.getFile()).text()) as CacheMeta;
    } catch {
      return null;
    }
  }
  async putMeta(meta: CacheMeta) {
    const h = (await this.file(metaName(meta.key), true))!;
    const w = await h.createWritable();
    await w.write(JSON.stringify(meta));
    await w.close();
  }
  async size(key: string) {
    const h = await this.file(fileName(key));
    return h ? (await h.getFile()).size : 0;
  }
  async read(key: string, start = 0, end?: number) {
    const h = await this.file(fileName(key));
    if (!h) throw new Error(`${key} is not in the cache`);
    const f = await h.getFile();
    return new Uint8Array(await f.slice(start, end ?? f.size).arrayBuffer());
  }
  async blob(key: string) {
    const h = await this.file(fileName(key));
    if (!h) throw new Error(`${key} is not in the cache`);
    return h.getFile();
  }
  async writer(key: string, at: number): Promise<Writer> {
    const h = (await this.file(fileName(key), true))!;
    if (h.createSyncAccessHandle) {
      // Workers: writes go straight to the file; flush() makes them survive a reload.
      const s = await h.createSyncAccessHandle();
      s.truncate(at);
      let pos = at;
      return {
        write: async (chunk) => {
          let off = 0;
          while (off < chunk.length) off += s.write(chunk.subarray(off), { at: pos + off });
          pos += chunk.length;
        },
        flush: async () => s.flush(),
        close: async () => {
          s.flush();
          s.close();
        },
      };
    }
    // The page itself (no sync handles): a writable stream, committed when closed.
    const w = await h.createWritable({ keepExistingData: true });
    await w.truncate(at);
    await w.seek(at);
    return {
      write: async (chunk) => w.write(chunk as unknown as ArrayBuffer),
      flush: async () => {},
      close: async () => w.close(),
    };
  }
  async remove(key: string) {
    const d = await this.dir;
    for (const n of [fileName(key), metaName(key)]) await d.removeEntry(n).catch(() => {});
  }
  async list() {
    const d = await this.dir;
    const out: CacheMeta[] = [];
    for await (const h of d.values()) {
      if (h.kind !== 'file' || !h.name.endsWith('.meta.json')) continue;
      try {
        out.push(JSON.parse(await (await (h as FileSystemFileHandle).getFile()).text()) as CacheMeta);
      } catch {
        // A half-written record: ignored (the file it describes is re-downloaded).
      }
    }
    return out;
  }
}

/** Cached repos (`endpoint-host/repo@revision`) with their files, sizes and state. */
export interface CachedRepo {
  id: string;
  repo: string;
  revision: string;
  endpoint: string;
  files: number;
  complete: number;
  bytes: number;
  verified: number;
  updated: number;
}

export async function summarize(store: Store): Promise<CachedRepo[]> {
  const groups = new Map<string, CachedRepo>();
  for (const m of await store.list()) {
    const id = m.key.slice(0, m.key.length - m.path.length - 1);
    const g = groups.get(id) ?? { id, repo: m.repo, revision: m.revision, endpoint: m.endpoint, files: 0, complete: 0, bytes: 0, verified: 0, updated: 0 };
    g.files++;
    if (m.complete) g.complete++;
    if (m.verified === 'hub' || m.verified === 'pinned') g.verified++;
    g.bytes += await store.size(m.key);
    g.updated = Math.max(g.updated, m.updated);
    groups.set(id, g);
  }
  return [...groups.values()].sort((a, b) => b.updated - a.updated);
}

/** Removes every cached file of a repo group (`CachedRepo.id`), or everything when `id` is null. */
export async function clearCache(store: Store, id: string | null): Promise<number> {
  let n = 0;
  for (const m of await store.list()) {
    if (id !== null && !m.key.startsWith(`${id}/`)) continue;
    await store.remove(m.key);
    n++;
  }
  return n;
}
