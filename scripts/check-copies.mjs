#!/usr/bin/env node
// Copies that must stay copies, checked the way diffusers checks its `# Copied from` comments
// (utils/check_copies.py): a line
//
//     // Copied from crates/schedulers/src/euler.rs::EulerDiscreteScheduler::scale_model_input
//     // Copied from web/ui/logic.ts::formatBytes with Bytes->Size
//
// right above a Rust `fn` (or a TypeScript `function` / `const`) says that the item below it is,
// line for line, the named item of the named file, after the optional `with A->B` replacements
// (comma-separated). A leading `Type::` narrows the search to the first `impl … Type` block. The
// item is the text from its `fn`/`function`/`const` line to the line that closes its first brace
// (braces inside strings are not special: the copies here have none). Leading whitespace is
// ignored, so a copy may sit at another indentation.
//
// Usage: node scripts/check-copies.mjs [dir…]  (default: crates web). Exits 1 on a stale copy.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

const MARK = /^\s*\/\/ Copied from (\S+?)::(\S+)(?:\s+with\s+(.+))?\s*$/;

function files(dir, out = []) {
  for (const name of readdirSync(dir)) {
    if (name === 'node_modules' || name === 'pkg' || name === 'dist' || name === 'target') continue;
    const p = join(dir, name);
    if (statSync(p).isDirectory()) files(p, out);
    else if (/\.(rs|ts)$/.test(name)) out.push(p);
  }
  return out;
}

const ITEM = (name) => new RegExp(`^\\s*(?:pub(?:\\([a-z]+\\))?\\s+)?(?:export\\s+)?(?:async\\s+)?(?:fn|function|const)\\s+${name}\\b`);

/** The item starting at line `start`: through the line where its first `{` closes. */
function itemAt(lines, start) {
  let depth = 0;
  let opened = false;
  for (let i = start; i < lines.length; i++) {
    for (const ch of lines[i]) {
      if (ch === '{') {
        depth++;
        opened = true;
      } else if (ch === '}') depth--;
    }
    if (opened && depth === 0) return lines.slice(start, i + 1);
    if (!opened && /;\s*$/.test(lines[i])) return lines.slice(start, i + 1);
  }
  return null;
}

/** The named item (`name` or `Type::name`) in `lines`, or a reason it is not there. */
function find(lines, path) {
  const parts = path.split('::');
  const name = parts.pop();
  let from = 0;
  if (parts.length > 0) {
    const type = parts.join('::');
    from = lines.findIndex((l) => new RegExp(`^\\s*impl\\b.*\\b${type}\\b`).test(l));
    if (from < 0) return { error: `no \`impl … ${type}\`` };
  }
  const re = ITEM(name);
  const at = lines.findIndex((l, i) => i >= from && re.test(l));
  if (at < 0) return { error: `no item \`${name}\`` };
  return { body: itemAt(lines, at) };
}

const norm = (ls) => ls.map((l) => l.trim()).join('\n');

const roots = process.argv.slice(2);
let checked = 0;
const stale = [];
for (const file of (roots.length > 0 ? roots : ['crates', 'web']).flatMap((d) => files(d))) {
  const lines = readFileSync(file, 'utf8').split('\n');
  lines.forEach((line, i) => {
    const m = MARK.exec(line);
    if (!m) return;
    const [, source, item, withs] = m;
    let src;
    try {
      src = readFileSync(source, 'utf8').split('\n');
    } catch {
      stale.push(`${file}:${i + 1}: the source ${source} does not exist`);
      return;
    }
    const orig = find(src, item);
    if (orig.error) {
      stale.push(`${file}:${i + 1}: ${source} has ${orig.error}`);
      return;
    }
    let next = i + 1;
    while (next < lines.length && /^\s*(\/\/\/|#\[)/.test(lines[next])) next++;
    const copy = itemAt(lines, next);
    let want = norm(orig.body);
    for (const pair of (withs ?? '').split(',').filter((s) => s.trim() !== '')) {
      const [a, b] = pair.split('->').map((s) => s.trim());
      want = want.split(a).join(b);
    }
    checked++;
    if (copy === null || norm(copy) !== want)
      stale.push(`${file}:${i + 1}: no longer a copy of ${source}::${item}; make it one again, or drop the "Copied from" line if it is meant to differ`);
  });
}
for (const s of stale) console.error(s);
console.log(`check-copies: ${checked} marked copies, ${stale.length} stale`);
process.exit(stale.length > 0 ? 1 : 0);
