// Fails when the TypeScript modules under web/ import each other in a circle (an import loop is
// how a split page grows back into one module). Follows relative `import` / `export … from`
// specifiers, `import type` included (a type-only circle still ties the modules together).
// A Rust crate's folder (one with a Cargo.toml) is read the same way: its `src/*.rs` modules and the
// `crate::module` paths they use outside comments (one level of modules, as studio-wasm has).
// Usage: node scripts/check-import-cycles.mjs [dir …] (default: web).

import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';

const root = resolve(dirname(new URL(import.meta.url).pathname), '..');
const dirs = (process.argv.length > 2 ? process.argv.slice(2) : ['web']).map((d) => resolve(root, d));
const skip = new Set(['node_modules', 'dist', 'pkg']);

function rustFiles(dir) {
  const src = join(dir, 'src');
  return readdirSync(src)
    .filter((n) => n.endsWith('.rs'))
    .map((n) => join(src, n));
}

function files(dir, out = []) {
  if (existsSync(join(dir, 'Cargo.toml'))) return rustFiles(dir);
  for (const name of readdirSync(dir)) {
    const full = join(dir, name);
    if (statSync(full).isDirectory()) {
      if (!skip.has(name)) files(full, out);
    } else if (/\.ts$/.test(name) && !/\.d\.ts$/.test(name)) out.push(full);
  }
  return out;
}

/** The module a relative specifier names, or null (packages, wasm-bindgen output, assets). */
function target(from, spec) {
  if (!spec.startsWith('.')) return null;
  const base = resolve(dirname(from), spec);
  for (const c of [base, `${base}.ts`, join(base, 'index.ts'), base.replace(/\.js$/, '.ts')]) if (existsSync(c) && statSync(c).isFile() && c.endsWith('.ts')) return c;
  return null;
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s+(?:type\s+)?(?:[^'";]*?\s+from\s+)?['"]([^'"]+)['"]/g;
const RUST_USE = /\bcrate::([a-z_][a-z0-9_]*)/g;
const graph = new Map();
for (const f of dirs.flatMap((d) => files(d))) {
  const src = readFileSync(f, 'utf8').replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:])\/\/.*$/gm, '$1');
  const deps = new Set();
  if (f.endsWith('.rs')) {
    for (const m of src.matchAll(RUST_USE)) {
      const t = join(dirname(f), `${m[1]}.rs`);
      if (t !== f && existsSync(t)) deps.add(t);
    }
  } else {
    for (const m of src.matchAll(IMPORT)) {
      const t = target(f, m[1]);
      if (t) deps.add(t);
    }
  }
  graph.set(f, [...deps]);
}

// Depth-first search; a back edge to a module on the stack is a circle.
const state = new Map();
const stack = [];
const cycles = [];
function visit(f) {
  state.set(f, 'open');
  stack.push(f);
  for (const d of graph.get(f) ?? []) {
    if (state.get(d) === 'open') cycles.push([...stack.slice(stack.indexOf(d)), d]);
    else if (!state.has(d)) visit(d);
  }
  stack.pop();
  state.set(f, 'done');
}
for (const f of graph.keys()) if (!state.has(f)) visit(f);

const rel = (f) => relative(root, f);
if (cycles.length) {
  console.error(`import circles in ${dirs.map(rel).join(', ')}:`);
  for (const c of cycles) console.error(`  ${c.map(rel).join(' → ')}`);
  process.exit(1);
}
console.log(`no import circles in ${dirs.map(rel).join(', ')} (${graph.size} modules)`);
