#!/usr/bin/env bash
# `npm test`: the formatter and linters (scripts/lint.sh), every test — Rust (all crates, ndarray
# backend), the cluster scripts (scripts/test-cluster.sh: a one-node Slurm cluster), then the browser studio
# (scripts/test-web.sh: the wasm32 WebGPU release build of crate studio-wasm, vitest, and the
# studio in headless Chromium compared with the native CLI).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. scripts/env.sh

bash scripts/lint.sh

echo "== cargo test (workspace)"
cargo test --workspace --locked 2>&1

echo "== cluster scripts: sharded batch/erasure-report on a one-node Slurm cluster, k8s manifests"
cargo build -p cli --locked 2>&1   # test-cluster.sh runs $CARGO_TARGET_DIR/debug/studio
bash scripts/test-cluster.sh

if [ -d crates/studio-wasm ]; then
  # test-web.sh builds the wasm32 release of studio-wasm once (via build-web.sh) and tests it.
  echo "== browser studio: wasm32 build, web unit tests, browser tests"
  bash scripts/test-web.sh
fi
