import { describe, expect, it } from 'vitest';
import { HubError, cachedFiles, chooseFiles, cpuRefusal, downloadRepo, f32WeightBytes, listRepo, resolveUrl, type RemoteFile } from '../hub/download';
import { Sha256, sha256Hex } from '../hub/sha256';
import { MemoryStore, cacheKey, clearCache, summarize } from '../hub/store';
import { isRepoId } from '../hub/presets';

const webCryptoSha = async (b: Uint8Array) =>
  Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', b as BufferSource)), (x) => x.toString(16).padStart(2, '0')).join('');
// The fake hub lists hashes with the implementation under test, which the first test checks against WebCrypto.
const nodeSha = sha256Hex;

describe('Sha256', () => {
  it('equals WebCrypto for every length around the block boundaries, fed in odd chunks', async () => {
    for (const n of [0, 1, 3, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 4099]) {
      const b = new Uint8Array(n).map((_, i) => (i * 31 + n) & 255);
      const want = await webCryptoSha(b);
      expect(sha256Hex(b), `length ${n}`).toBe(want);
      const h = new Sha256();
      for (let i = 0; i < n; i += 7) h.update(b.subarray(i, i + 7));
      expect(h.hex(), `length ${n} in chunks of 7`).toBe(want);
    }
    expect(sha256Hex(new TextEncoder().encode('abc'))).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad');
  });
});

/** A fake hub: the tree API and resolve URLs over in-memory files, with Range support and faults. */
function fakeHub(files: Record<string, Uint8Array>, opts: { pageSize?: number; ignoreRange?: boolean; cutAfter?: number; corrupt?: string } = {}) {
  const log: { url: string; range: string | null; status: number }[] = [];
  let cutOnce = opts.cutAfter;
  const tree = Object.entries(files).map(([path, b]) => ({
    type: 'file',
    path,
    size: b.length,
    oid: 'x',
    ...(path.endsWith('.safetensors') ? { lfs: { oid: nodeSha(b), size: b.length, pointerSize: 134 } } : {}),
  }));
  const fetchFn = async (url: string, init?: RequestInit): Promise<Response> => {
    const u = new URL(url);
    const range = (init?.headers as Record<string, string> | undefined)?.Range ?? null;
    const api = /^\/api\/models\/(.+)\/tree\/main$/.exec(u.pathname);
    if (api) {
      const size = opts.pageSize ?? tree.length;
      const cursor = Number(u.searchParams.get('cursor') ?? 0);
      const page = tree.slice(cursor, cursor + size);
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (cursor + size < tree.length) headers.link = `<${u.origin}${u.pathname}?recursive=true&cursor=${cursor + size}>; rel="next"`;
      log.push({ url, range, status: 200 });
      return new Response(JSON.stringify(page), { status: 200, headers });
    }
    const m = /^\/org\/model\/resolve\/main\/(.+)$/.exec(u.pathname);
    const path = m ? decodeURIComponent(m[1]) : '';
    let body = files[path];
    if (!body) {
      log.push({ url, range, status: 404 });
      return new Response('nope', { status: 404 });
    }
    if (opts.corrupt === path) body = body.map((v, i) => (i === 10 ? v ^ 1 : v));
    let status = 200;
    let start = 0;
    if (range && !opts.ignoreRange) {
      start = Number(/bytes=(\d+)-/.exec(range)![1]);
      status = 206;
    }
    const slice = body.slice(start);
    log.push({ url, range, status });
    const cut = cutOnce;
    cutOnce = undefined;
    let i = 0;
    const stream = new ReadableStream<Uint8Array>({
      // Chunks of 100 bytes, one per read, as a network delivers them.
      pull(c) {
        if (cut !== undefined && i >= cut) c.error(new Error('connection reset'));
        else if (i >= slice.length) c.close();
        else c.enqueue(slice.slice(i, (i += 100)));
      },
    });
    return new Response(stream, { status, headers: { 'content-length': String(slice.length), etag: '"e"' } });
  };
  return { fetchFn, log };
}

const bytes = (n: number, seed: number) => new Uint8Array(n).map((_, i) => (i * 7 + seed) & 255);
const REPO_FILES: Record<string, Uint8Array> = {
  'model_index.json': new TextEncoder().encode('{}'),
  'scheduler/scheduler_config.json': new TextEncoder().encode('{"a":1}'),
  'text_encoder/config.json': new TextEncoder().encode('{}'),
  'text_encoder/model.safetensors': bytes(900, 1),
  'text_encoder/model.fp16.safetensors': bytes(450, 2),
  'tokenizer/vocab.json': new TextEncoder().encode('{}'),
  'tokenizer/merges.txt': new TextEncoder().encode('#'),
  'unet/config.json': new TextEncoder().encode('{}'),
  'unet/diffusion_pytorch_model.safetensors': bytes(2000, 3),
  'unet/diffusion_pytorch_model.fp16.safetensors': bytes(1000, 4),
  'unet/diffusion_pytorch_model.non_ema.bin': bytes(50, 5),
  'vae/config.json': new TextEncoder().encode('{}'),
  'vae/diffusion_pytorch_model.safetensors': bytes(700, 6),
  'safety_checker/model.safetensors': bytes(300, 7),
  'v1-5-pruned.ckpt': bytes(80, 8),
};
const EP = 'https://hub.test';

async function listed(hub = fakeHub(REPO_FILES)) {
  return chooseFiles(await listRepo(EP, 'org/model', 'main', hub.fetchFn)).files;
}

describe('listing and choosing files', () => {
  it('reads every page of the tree and keeps the LFS SHA-256', async () => {
    const hub = fakeHub(REPO_FILES, { pageSize: 4 });
    const all = await listRepo(EP, 'org/model', 'main', hub.fetchFn);
    expect(all.length).toBe(Object.keys(REPO_FILES).length);
    expect(hub.log.length).toBe(4);
    expect(all.find((f) => f.path === 'unet/diffusion_pytorch_model.fp16.safetensors')?.sha256).toBe(nodeSha(REPO_FILES['unet/diffusion_pytorch_model.fp16.safetensors']));
    expect(all.find((f) => f.path === 'unet/config.json')?.sha256).toBeNull();
  });

  it('picks fp16 weights where offered, configs and tokenizer, and nothing else', async () => {
    const c = chooseFiles(await listRepo(EP, 'org/model', 'main', fakeHub(REPO_FILES).fetchFn));
    expect(c.files.map((f) => f.path).sort()).toEqual(
      [
        'model_index.json',
        'scheduler/scheduler_config.json',
        'text_encoder/config.json',
        'text_encoder/model.fp16.safetensors',
        'tokenizer/merges.txt',
        'tokenizer/vocab.json',
        'unet/config.json',
        'unet/diffusion_pytorch_model.fp16.safetensors',
        'vae/config.json',
        'vae/diffusion_pytorch_model.safetensors',
      ].sort(),
    );
    expect(c.missing).toEqual([]);
    expect(c.bytes).toBe(2 + 7 + 2 + 450 + 2 + 1 + 2 + 1000 + 2 + 700);
    const noVae = chooseFiles([{ path: 'unet/diffusion_pytorch_model.safetensors', size: 1, sha256: null }]);
    expect(noVae.missing).toEqual(['text_encoder', 'vae', 'scheduler']);
  });

  it('says what went wrong when the repo cannot be listed', async () => {
    const notFound = async () => new Response('', { status: 404 });
    await expect(listRepo(EP, 'org/nope', 'main', notFound)).rejects.toThrow(/does not exist on https:\/\/hub.test: check the model id/);
    const gated = async () => new Response('', { status: 401 });
    await expect(listRepo(EP, 'org/gated', 'main', gated)).rejects.toThrow(/private or gated/);
    const offline = async () => {
      throw new TypeError('Failed to fetch');
    };
    await expect(listRepo(EP, 'org/model', 'main', offline)).rejects.toThrow(/could not reach hub.test/);
    expect(isRepoId('CompVis/stable-diffusion-v1-4')).toBe(true);
    expect(isRepoId('../etc/passwd')).toBe(false);
    expect(isRepoId('no-slash')).toBe(false);
  });
});

describe('the CPU path refuses what wasm32 cannot hold, before downloading', () => {
  const f = (path: string, size: number): RemoteFile => ({ path, size, sha256: null });
  // SD 1.5's fp16 files as the hub lists them (sizes of the real repo's fp16 variants).
  const sd15 = [
    f('unet/diffusion_pytorch_model.fp16.safetensors', 1_719_125_304),
    f('text_encoder/model.fp16.safetensors', 246_144_152),
    f('vae/diffusion_pytorch_model.fp16.safetensors', 167_335_342),
    f('unet/config.json', 1_000),
  ];
  it('counts fp16 weights twice and skips configs', () => {
    expect(f32WeightBytes(sd15)).toBe(2 * (1_719_125_304 + 246_144_152 + 167_335_342));
    expect(f32WeightBytes([f('unet/diffusion_pytorch_model.safetensors', 100), f('unet/x.fp16-00001-of-00002.safetensors', 10)])).toBe(120);
  });
  it('refuses SD 1.5 with the numbers and what to do, lets the classroom-sized model through', () => {
    expect(cpuRefusal('stable-diffusion-v1-5/stable-diffusion-v1-5', sd15)).toMatch(/needs about 4\.3 GB of weights as f32.*Nothing was downloaded\. Use WebGPU/);
    expect(cpuRefusal('tiny', [f('unet/diffusion_pytorch_model.fp16.safetensors', 12_000_000)])).toBeNull();
  });
});

describe('downloadRepo', () => {
  it('downloads, verifies against the hub SHA-256, and serves the second load from the cache', async () => {
    const hub = fakeHub(REPO_FILES);
    const files = await listed(hub);
    const store = new MemoryStore();
    const seen: number[] = [];
    const done = await downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: hub.fetchFn, onProgress: (p) => seen.push(p.filter((x) => x.state === 'done').length) });
    expect(done.every((p) => p.state === 'done')).toBe(true);
    expect(done.find((p) => p.path.endsWith('fp16.safetensors'))?.verified).toBe('hub');
    expect(done.find((p) => p.path === 'unet/config.json')?.verified).toBe('size');
    expect(seen[seen.length - 1]).toBe(files.length);
    const key = cacheKey(EP, 'org/model', 'main', 'unet/diffusion_pytorch_model.fp16.safetensors');
    expect(await store.read(key)).toEqual(REPO_FILES['unet/diffusion_pytorch_model.fp16.safetensors']);

    const before = hub.log.length;
    const again = await downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: hub.fetchFn });
    expect(again.every((p) => p.state === 'cached')).toBe(true);
    expect(hub.log.length).toBe(before);

    const summary = await summarize(store);
    expect(summary).toHaveLength(1);
    expect(summary[0]).toMatchObject({ id: 'hub.test/org/model@main', files: files.length, complete: files.length, verified: 3, bytes: 2 + 7 + 2 + 450 + 2 + 1 + 2 + 1000 + 2 + 700 });
    expect((await cachedFiles(store, EP, 'org/model', 'main')).length).toBe(files.length);
    expect(await clearCache(store, 'hub.test/org/model@main')).toBe(files.length);
    expect(await summarize(store)).toEqual([]);
  });

  it('resumes a cut download with a Range request and transfers each byte once', async () => {
    const big = 'unet/diffusion_pytorch_model.fp16.safetensors';
    const hub = fakeHub(REPO_FILES, { cutAfter: 600 });
    const files = (await listed(hub)).filter((f) => f.path === big);
    const store = new MemoryStore();
    await expect(downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: hub.fetchFn })).rejects.toThrow(/stopped at 600 bytes.*resume/);
    const key = cacheKey(EP, 'org/model', 'main', big);
    expect(await store.size(key)).toBe(600);
    expect((await store.getMeta(key))?.complete).toBe(false);

    const r = await downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: hub.fetchFn });
    const last = hub.log[hub.log.length - 1];
    expect(last).toMatchObject({ range: 'bytes=600-', status: 206 });
    expect(r[0]).toMatchObject({ state: 'done', resumedFrom: 600, loaded: 1000, verified: 'hub' });
    expect(await store.read(key)).toEqual(REPO_FILES[big]);
  });

  it('starts over when the server ignores the range', async () => {
    const big = 'unet/diffusion_pytorch_model.fp16.safetensors';
    const cut = fakeHub(REPO_FILES, { cutAfter: 300 });
    const files = (await listed(cut)).filter((f) => f.path === big);
    const store = new MemoryStore();
    await expect(downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: cut.fetchFn })).rejects.toThrow(HubError);
    const noRange = fakeHub(REPO_FILES, { ignoreRange: true });
    const r = await downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: noRange.fetchFn });
    expect(r[0]).toMatchObject({ state: 'done', loaded: 1000 });
    expect(await store.read(cacheKey(EP, 'org/model', 'main', big))).toEqual(REPO_FILES[big]);
  });

  it('deletes a copy whose SHA-256 is wrong and says so', async () => {
    const big = 'vae/diffusion_pytorch_model.safetensors';
    const hub = fakeHub(REPO_FILES, { corrupt: big });
    const files = (await listed(hub)).filter((f) => f.path === big);
    const store = new MemoryStore();
    await expect(downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: hub.fetchFn })).rejects.toThrow(
      /vae\/diffusion_pytorch_model\.safetensors failed its SHA-256 check.*deleted/,
    );
    expect(await store.getMeta(cacheKey(EP, 'org/model', 'main', big))).toBeNull();
    // A pinned hash wins over the hub's.
    const good = fakeHub(REPO_FILES);
    await expect(
      downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: good.fetchFn, pinned: { [big]: '0'.repeat(64) } }),
    ).rejects.toThrow(/expected 0000/);
  });

  it('downloads again when the hub lists new content for a cached path', async () => {
    const path = 'vae/diffusion_pytorch_model.safetensors';
    const store = new MemoryStore();
    const v1 = fakeHub(REPO_FILES);
    await downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files: (await listed(v1)).filter((f) => f.path === path), store, fetchFn: v1.fetchFn });
    const v2files = { ...REPO_FILES, [path]: bytes(700, 99) };
    const v2 = fakeHub(v2files);
    const files: RemoteFile[] = (await listed(v2)).filter((f) => f.path === path);
    const r = await downloadRepo({ endpoint: EP, repo: 'org/model', revision: 'main', files, store, fetchFn: v2.fetchFn });
    expect(r[0].state).toBe('done');
    expect(await store.read(cacheKey(EP, 'org/model', 'main', path))).toEqual(v2files[path]);
    expect(resolveUrl(EP, 'org/model', 'main', 'unet/a b.json')).toBe('https://hub.test/org/model/resolve/main/unet/a%20b.json');
  });
});
