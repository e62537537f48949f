#!/usr/bin/env bash
# Browser-studio tests (the typecheck and the import-circle check are scripts/lint.sh's): vitest
# unit tests (web/tests: protocol, UI logic, PNG chunks,
# share URL, heat-map, SHA-256, hub downloader and cache, the page's store and engine client), then
# the studio in headless Chromium
# (tests/browser/studio.mjs + features.mjs): WebGPU on SwiftShader and the CPU fallback compared
# with the native CLI, cancel, corrupt / incomplete models, no WebGPU, edit files and erasure in
# the page, compare / grid, share URL, hub downloads from a local mirror. Installs Debian chromium
# if missing. ONLY=<regex> runs the matching browser cases.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

step() { printf '\n== %s\n' "$*"; }

if ! command -v chromium >/dev/null 2>&1; then
  step "apt-get install chromium"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

bash scripts/build-web.sh

step "vitest (web unit tests)"
node_modules/.bin/vitest run

step "native CLI for the comparison (cargo build -p cli)"
cargo build --locked -p cli --bin studio
export STUDIO_CLI="$CARGO_TARGET_DIR/debug/studio"

step "browser tests (headless Chromium)"
node tests/browser/studio.mjs
