#!/usr/bin/env bash
# `npm test`: every test — Rust (all crates, ndarray backend), the wasm32 build of the core crates.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. scripts/env.sh

echo "== cargo test (workspace)"
cargo test --workspace --locked 2>&1

if [ -d crates/studio-wasm ]; then
  echo "== wasm32 build of the core crates with burn's WebGPU backend (crate studio-wasm)"
  cargo build --locked --release --target wasm32-unknown-unknown -p studio-wasm 2>&1
fi
