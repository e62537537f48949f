#!/usr/bin/env bash
# `npm test`: every test — Rust (all crates, ndarray backend), the wasm32 build of the core crates.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. scripts/env.sh

echo "== cargo test (workspace)"
cargo test --workspace --locked 2>&1

echo "== wasm32 build of the core crates"
cargo build --locked --target wasm32-unknown-unknown -p diffusion -p schedulers -p pipeline 2>&1
