// scripts/check-import-cycles.mjs: the circles it must find (TypeScript imports, Rust `crate::`
// paths) and what it must not count (comments, type-free acyclic graphs).
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

// A .mjs test: the checker is a Node script, and the page's tsconfig has no Node types.
const SCRIPT = join(dirname(fileURLToPath(import.meta.url)), '../../scripts/check-import-cycles.mjs');

/** Runs the checker on a temporary folder of `files`; `{ok, out}`. */
function check(files) {
  const dir = mkdtempSync(join(tmpdir(), 'cycles-'));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, '..'), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  try {
    return { ok: true, out: execFileSync('node', [SCRIPT, dir], { encoding: 'utf8', stdio: 'pipe' }) };
  } catch (e) {
    return { ok: false, out: String(e.stderr) };
  }
}

describe('check-import-cycles', () => {
  it('finds a TypeScript circle, type-only imports included', () => {
    const r = check({ 'a.ts': "import { b } from './b';\n", 'b.ts': "import type { A } from './a';\n" });
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/a\.ts → .*b\.ts → .*a\.ts/);
  });
  it('finds a circle of Rust modules through crate:: paths, not through comments', () => {
    const rust = { 'Cargo.toml': '', 'src/a.rs': 'use crate::b::x;\n', 'src/b.rs': '//! see [`crate::a`]\nuse crate::c::y;\n', 'src/c.rs': 'pub fn y() {}\n' };
    expect(check(rust)).toMatchObject({ ok: true });
    const r = check({ ...rust, 'src/c.rs': 'fn f() { crate::a::z() }\n' });
    expect(r.ok).toBe(false);
    expect(r.out).toMatch(/a\.rs → .*b\.rs → .*c\.rs → .*a\.rs/);
  });
});
