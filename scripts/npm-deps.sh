#!/usr/bin/env bash
# The page's npm packages (package-lock.json), installed when missing or stale. Called by
# build-web.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x node_modules/.bin/vite ] || [ ! -x node_modules/.bin/tsc ] || [ ! -x node_modules/.bin/wasm-opt ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  printf '\n== %s\n' "npm ci"
  npm ci --no-audit --no-fund
fi
