// Vite builds the studio page (web/) into web/dist and serves it. The bundled models are served
// by the page itself under models/<id>/ with an index (models/index.json): the classroom model
// (models/classroom) when it is present, and the tiny test fixture. Nothing is fetched elsewhere.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'vite';
import { defineConfig } from 'vitest/config';

const root = fileURLToPath(new URL('.', import.meta.url));

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
      } else if (rel === 'model_index.json' || COMPONENTS.has(rel.split('/')[0])) {
        if (!/\.(bin|ckpt|pt|pth|msgpack|h5|onnx)$/.test(name)) out.push({ path: rel, size: statSync(full).size });
      }
    }
  };
  walk(dir);
  return out;
}

function bundledModels() {
  return CANDIDATES.filter((m) => existsSync(join(m.dir, 'unet'))).map((m) => ({ ...m, files: modelFiles(m.dir) }));
}

function studioModels(): Plugin {
  const index = () =>
    JSON.stringify({ models: bundledModels().map(({ id, name, description, files }) => ({ id, name, description, files })) }, null, 1);
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
        const file = model?.files.find((f) => f.path === rest.join('/'));
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
        for (const f of m.files) {
          this.emitFile({ type: 'asset', fileName: `models/${m.id}/${f.path}`, source: readFileSync(join(m.dir, f.path)) });
        }
      }
    },
  };
}

export default defineConfig({
  root: 'web',
  base: './',
  plugins: [studioModels()],
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
    include: ['web/tests/**/*.test.ts'],
    environment: 'node',
  },
});
