// Vite builds the studio page (web/) into web/dist and serves it. The bundled models are served
// by the page itself under models/<id>/ with an index (models/index.json): the classroom model
// (models/classroom) when it is present, and the tiny test fixture. Nothing is fetched elsewhere.
//
// With STUDIO_HUB_MIRROR=1 the dev and preview servers also answer like the Hugging Face hub
// under /hub-mirror/ for one repo, `erasure-studio/tiny-sd1` (the tiny fixture): the tree API
// with LFS SHA-256s and `resolve/` downloads with Range support; /hub-mirror/slow/ is the same
// at ~1 MB/s (to interrupt a download), /hub-mirror/_log lists the requests. The browser tests
// point the page at it with `?hub=`, so the downloader is tested without the network.
// STUDIO_HUB_MIRROR_REPOS="owner/name=/abs/dir;…" mirrors more folders (tests/browser/large.mjs
// serves an SD 1.5-sized model made by scripts/reference/make_sd15_random.py this way).

import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createReadStream, existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';
import { defineConfig } from 'vitest/config';
import { contentSecurityPolicy, hubHosts } from './web/security-policy.ts';

const root = fileURLToPath(new URL('.', import.meta.url));

/** The hub hosts the page may contact: huggingface.co and its CDNs, plus STUDIO_HUB_HOSTS. */
const HUB_HOSTS = hubHosts(process.env.STUDIO_HUB_HOSTS);

/**
 * The Content-Security-Policy (web/security-policy.ts): a header on every response of the preview
 * server (the worker's script gets its policy from its own header) and a <meta> in the built
 * index.html for static hosting. Not in `vite dev`: its injected <style> tags and HMR socket need more.
 */
function securityPolicy(): Plugin[] {
  const header = contentSecurityPolicy(HUB_HOSTS);
  return [
    {
      name: 'security-policy-meta',
      apply: 'build',
      transformIndexHtml: () => [{ tag: 'meta', attrs: { 'http-equiv': 'Content-Security-Policy', content: contentSecurityPolicy(HUB_HOSTS, true) }, injectTo: 'head-prepend' }],
    },
    {
      name: 'security-policy-header',
      configurePreviewServer(server) {
        server.middlewares.use((_req, res, next) => {
          res.setHeader('content-security-policy', header);
          res.setHeader('x-content-type-options', 'nosniff');
          res.setHeader('referrer-policy', 'no-referrer');
          next();
        });
      },
    },
  ];
}

interface Bundled {
  id: string;
  name: string;
  description: string;
  dir: string;
}

const CANDIDATES: Bundled[] = [
  {
    id: 'classroom',
    name: 'Classroom model',
    description: 'Trained on the classroom world of shapes, colours, styles and characters.',
    dir: join(root, 'models/classroom'),
  },
  {
    id: 'tiny-sd1',
    name: 'Tiny SD-1 (test model)',
    description: 'SD-1-shaped, random weights, for tests: its images are noise.',
    dir: join(root, 'tests/fixtures/tiny-sd1'),
  },
];

const COMPONENTS = new Set(['text_encoder', 'tokenizer', 'unet', 'vae', 'scheduler']);

/** Files of a model folder the studio reads (`model_index.json` and the five components). */
function modelFiles(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const full = join(d, name);
      const rel = relative(dir, full).split(sep).join('/');
      if (statSync(full).isDirectory()) {
        if (rel.includes('/') || COMPONENTS.has(name)) walk(full);
      } else if (rel === 'model_index.json' || rel === 'studio.json' || COMPONENTS.has(rel.split('/')[0])) {
        if (!/\.(bin|ckpt|pt|pth|msgpack|h5|onnx)$/.test(name)) out.push({ path: rel, size: statSync(full).size });
      }
    }
  };
  walk(dir);
  return out;
}

/** The classroom evaluator beside a model (`evaluator/config.json` + weights): served, not part of the model's load. */
function evaluatorFiles(dir: string): { path: string; size: number }[] {
  const paths = ['evaluator/config.json', 'evaluator/model.safetensors'];
  return paths.every((p) => existsSync(join(dir, p))) ? paths.map((p) => ({ path: p, size: statSync(join(dir, p)).size })) : [];
}

function bundledModels() {
  return CANDIDATES.filter((m) => existsSync(join(m.dir, 'unet'))).map((m) => ({ ...m, files: modelFiles(m.dir), evaluator: evaluatorFiles(m.dir) }));
}

function studioModels(): Plugin {
  const index = () =>
    JSON.stringify({ models: bundledModels().map(({ id, name, description, files, evaluator }) => ({ id, name, description, files, ...(evaluator.length ? { evaluator } : {}) })) }, null, 1);
  return {
    name: 'studio-models',
    configureServer(server) {
      server.middlewares.use((req, res, next) => {
        const url = decodeURIComponent((req.url ?? '').split('?')[0]);
        const m = /^\/models\/(.*)$/.exec(url);
        if (!m) return next();
        if (m[1] === 'index.json') {
          res.setHeader('content-type', 'application/json');
          return res.end(index());
        }
        const [id, ...rest] = m[1].split('/');
        const model = bundledModels().find((b) => b.id === id);
        const file = [...(model?.files ?? []), ...(model?.evaluator ?? [])].find((f) => f.path === rest.join('/'));
        if (!model || !file) {
          res.statusCode = 404;
          return res.end('not found');
        }
        res.setHeader('content-type', 'application/octet-stream');
        res.setHeader('content-length', String(file.size));
        res.end(readFileSync(join(model.dir, file.path)));
      });
    },
    generateBundle() {
      this.emitFile({ type: 'asset', fileName: 'models/index.json', source: index() });
      for (const m of bundledModels()) {
        for (const f of [...m.files, ...m.evaluator]) {
          this.emitFile({ type: 'asset', fileName: `models/${m.id}/${f.path}`, source: readFileSync(join(m.dir, f.path)) });
        }
      }
    },
  };
}

const MIRROR_REPO = 'erasure-studio/tiny-sd1';
const MIRROR_DIR = join(root, 'tests/fixtures/tiny-sd1');

/** repo id → folder: the tiny fixture, and whatever STUDIO_HUB_MIRROR_REPOS adds. */
function mirrorRepos(): Map<string, string> {
  const repos = new Map([[MIRROR_REPO, MIRROR_DIR]]);
  for (const entry of (process.env.STUDIO_HUB_MIRROR_REPOS ?? '').split(';').filter(Boolean)) {
    const [repo, dir] = entry.split('=');
    if (repo && dir) repos.set(repo, dir);
  }
  return repos;
}

function hubMirror(): Plugin {
  const log: { path: string; range: string | null; status: number; slow: boolean }[] = [];
  const repos = mirrorRepos();
  const shas = new Map<string, string>();
  const sha = (dir: string, path: string) => {
    const key = join(dir, path);
    if (!shas.has(key)) shas.set(key, createHash('sha256').update(readFileSync(key)).digest('hex'));
    return shas.get(key)!;
  };
  const files = (dir: string) => [...modelFiles(dir), ...(dir === MIRROR_DIR ? [{ path: 'unet/diffusion_pytorch_model.non_ema.bin', size: 4 }] : [])];
  const handle = (req: IncomingMessage, res: ServerResponse, next: () => void) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = /^\/hub-mirror(\/slow)?\/(.*)$/.exec(decodeURIComponent(url.pathname));
    if (!m) return next();
    const slow = !!m[1];
    const rest = m[2];
    res.setHeader('access-control-allow-origin', '*');
    if (rest === '_log') {
      // Returns the requests so far; `?clear=1` then forgets them.
      const body = JSON.stringify(log);
      if (url.searchParams.has('clear')) log.length = 0;
      res.setHeader('content-type', 'application/json');
      res.setHeader('cache-control', 'no-store');
      return res.end(body);
    }
    const range = (req.headers.range as string | undefined) ?? null;
    const fail = (status: number, msg: string) => {
      log.push({ path: rest, range, status, slow });
      res.statusCode = status;
      res.end(msg);
    };
    const tree = /^api\/models\/(.+)\/tree\/main$/.exec(rest);
    const treeDir = tree ? repos.get(tree[1]) : undefined;
    if (treeDir) {
      log.push({ path: rest, range, status: 200, slow });
      res.setHeader('content-type', 'application/json');
      return res.end(
        JSON.stringify(
          files(treeDir).map((f) => ({
            type: 'file',
            path: f.path,
            size: f.size,
            oid: '0'.repeat(40),
            ...(f.path.endsWith('.safetensors') ? { lfs: { oid: sha(treeDir, f.path), size: f.size, pointerSize: 134 } } : {}),
          })),
        ),
      );
    }
    if (rest.startsWith('api/models/')) return fail(404, 'Repository not found');
    const resolve = /^(.+?\/.+?)\/resolve\/main\/(.+)$/.exec(rest);
    const dir = resolve ? repos.get(resolve[1]) : undefined;
    const file = dir ? modelFiles(dir).find((f) => f.path === resolve![2]) : undefined;
    if (!dir || !file) return fail(404, 'Entry not found');
    const full = join(dir, file.path);
    // `bytes=N-` (resuming) and `bytes=A-B` (a safetensors header, read before a download).
    const r = range ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    const start = r ? Number(r[1]) : 0;
    const end = r && r[2] ? Math.min(Number(r[2]), file.size - 1) : file.size - 1;
    if (start > file.size || end < start - 1) return fail(416, 'Range Not Satisfiable');
    log.push({ path: rest, range, status: r ? 206 : 200, slow });
    res.statusCode = r ? 206 : 200;
    res.setHeader('accept-ranges', 'bytes');
    res.setHeader('content-type', 'application/octet-stream');
    res.setHeader('content-length', String(end + 1 - start));
    res.setHeader('etag', `"${sha(dir, file.path).slice(0, 16)}"`);
    if (r) res.setHeader('content-range', `bytes ${start}-${end}/${file.size}`);
    // Streamed: a mirrored checkpoint can be gigabytes.
    if (!slow) return void createReadStream(full, { start, end }).pipe(res);
    const part = readFileSync(full).subarray(start, end + 1);
    // ~1 MB/s in 32 KB pieces.
    let o = 0;
    const tick = () => {
      if (res.destroyed) return;
      if (o >= part.length) return res.end();
      res.write(part.subarray(o, o + 32768));
      o += 32768;
      setTimeout(tick, 30);
    };
    tick();
  };
  return {
    name: 'hub-mirror',
    configureServer(server) {
      if (process.env.STUDIO_HUB_MIRROR) server.middlewares.use(handle);
    },
    configurePreviewServer(server) {
      if (process.env.STUDIO_HUB_MIRROR) server.middlewares.use(handle);
    },
  };
}

export default defineConfig({
  root: 'web',
  base: './',
  plugins: [...securityPolicy(), studioModels(), hubMirror()],
  define: { __STUDIO_HUB_HOSTS__: JSON.stringify(HUB_HOSTS) },
  worker: { format: 'es' },
  build: {
    outDir: 'dist',
    emptyOutDir: true,
    target: 'es2022',
    chunkSizeWarningLimit: 1024,
  },
  server: { host: '127.0.0.1', port: 5173, strictPort: false },
  preview: { host: '127.0.0.1', port: Number(process.env.PORT ?? 4173), strictPort: true },
  test: {
    root: '.',
    include: ['web/tests/**/*.test.ts', 'web/tests/**/*.test.mjs'],
    environment: 'node',
  },
});
