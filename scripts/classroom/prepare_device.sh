#!/usr/bin/env bash
# Prepares, on the development machine, what device_run.sh needs on a GPU machine without network:
#   .whl/diffusers-0.42.1-py3-none-any.whl   (the GPU image has torch, transformers, safetensors, numpy,
#                                              pillow, matplotlib, huggingface-hub, regex, requests,
#                                              filelock; diffusers' other needs are in the standard library)
#   .bin/classroom-data                       (the world's dataset writer, x86-64 Linux, dev profile)
# Both folders are git-ignored (.whl by .gitignore, .bin by .git/info/exclude), so they travel only as
# `carry` paths: carry [".whl", ".bin"].
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
mkdir -p .whl .bin
if ! ls .whl/diffusers-0.42.1-*.whl >/dev/null 2>&1; then
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        -d .whl diffusers==0.42.1
fi
unzip -p .whl/diffusers-0.42.1-*.whl '*/METADATA' | grep '^Requires-Dist' | grep -v extra || true
git check-ignore -q .bin || echo /.bin/ >> .git/info/exclude
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/erasure-studio/target}
cargo build -p classroom --bin classroom-data
cp "$CARGO_TARGET_DIR/debug/classroom-data" .bin/classroom-data
ls -la .whl .bin
