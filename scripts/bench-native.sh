#!/usr/bin/env bash
# Native model benchmark (issue 2, BENCHMARKS.md "Model stages"): PyTorch/diffusers first
# (scripts/reference/bench_diffusers.py, the baseline), then `studio bench` in the same run on the
# same cores, which prints ours / PyTorch for text encoding, one UNet step (batch 2, 64×64 latents)
# and a 512 px VAE decode of SD 1.5-shaped random weights, and the classroom model's stages.
# Needs the reference venv (DESIGN.md: PyTorch CPU + diffusers from PyPI) at $PY.
#   bash scripts/bench-native.sh [--devices ndarray,wgpu] [--repeats N]
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
PY="${PY:-/var/cache/erasure-studio/venv/bin/python}"
out="${BENCH_OUT:-$CARGO_TARGET_DIR/bench}"
mkdir -p "$out"
cargo build --release --locked -p cli
repeats=3
for a in "$@"; do case "$a" in --repeats=*) repeats="${a#*=}";; esac; done
echo "== PyTorch baseline ($("$PY" -c 'import torch; print("torch", torch.__version__, torch.get_num_threads(), "threads")'))"
"$PY" scripts/reference/bench_diffusers.py --out "$out/torch.json" --model models/classroom --repeats "$repeats"
echo "== studio bench"
"$CARGO_TARGET_DIR/release/studio" bench --model models/classroom --baseline "$out/torch.json" --json "$out/ours.json" "$@"
