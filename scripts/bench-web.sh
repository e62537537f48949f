#!/usr/bin/env bash
# Browser benchmark: wasm size (raw / gzip after wasm-opt), page load → first image and time per
# denoising step in headless Chromium (SwiftShader WebGPU and the CPU path), each against a native
# baseline measured in the same run (tests/browser/bench.mjs). Results: tests/browser/out/bench.json;
# BENCHMARKS.md "Browser" quotes them.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

bash scripts/build-web.sh
WASM="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/studio_wasm.wasm"
RAW=$(stat -c %s "$WASM")
OPT=$(stat -c %s web/pkg/studio_wasm_bg.wasm)
GZ=$(gzip -9 -c web/pkg/studio_wasm_bg.wasm | wc -c)
echo
echo "== native baselines (release): studio-wasm example step_bench, studio CLI"
cargo build --locked --release -p studio-wasm --features studio-wasm/bench --example step_bench -p cli --bin studio
export STEP_BENCH="$CARGO_TARGET_DIR/release/examples/step_bench"
export STUDIO_RELEASE_CLI="$CARGO_TARGET_DIR/release/studio"
echo
echo "== browser benchmark"
node tests/browser/bench.mjs
awk -v r="$RAW" -v o="$OPT" -v g="$GZ" 'BEGIN { printf "\nwasm: %.2f MB from rustc, %.2f MB after wasm-opt -O2, %.2f MB gzip -9 (%.2f of the 8 MB gzip goal)\n", r/1e6, o/1e6, g/1e6, g/8e6 }'
