#!/usr/bin/env bash
# Builds the browser studio: the studio-wasm crate for wasm32 (release, burn on WebGPU + ndarray),
# wasm-bindgen (--target web) into web/pkg, wasm-opt -O2 (npm binaryen), then Vite into web/dist.
# Installs what is missing: the wasm32 target, wasm-bindgen-cli of the exact version the lockfile
# pins, the npm packages. Idempotent and incremental: unchanged wasm is not re-processed.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

step() { printf '\n== %s\n' "$*"; }

if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-unknown-unknown; then
  step "rustup target add wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi

# wasm-bindgen-cli must be exactly the version of the wasm-bindgen crate in Cargo.lock.
WB_VERSION="$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/version = |"/, ""); print; exit }' Cargo.lock)"
[ -n "$WB_VERSION" ] || { echo "wasm-bindgen is not in Cargo.lock" >&2; exit 1; }
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ]; then
  step "cargo install wasm-bindgen-cli $WB_VERSION"
  # Not --locked: one of its locked dependency versions is missing from the registry.
  cargo install wasm-bindgen-cli --version "=$WB_VERSION" --force
fi

bash scripts/npm-deps.sh

step "cargo rustc -p studio-wasm --crate-type cdylib (wasm32, release)"
# The crate is an rlib for native builds; the browser needs the cdylib (see its Cargo.toml).
cargo rustc --locked --target wasm32-unknown-unknown --release -p studio-wasm --lib --crate-type cdylib
WASM="$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/studio_wasm.wasm"

# WASM_OPT=none skips wasm-opt (a faster edit-build-test loop; the module is ~2x bigger).
WASM_OPT="${WASM_OPT:--O2}"
STAMP="web/pkg/.source-sha256"
SUM="$(sha256sum "$WASM" | cut -d' ' -f1) $WASM_OPT"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SUM" ] && [ -f web/pkg/studio_wasm_bg.wasm ]; then
  step "web/pkg is up to date"
else
  step "wasm-bindgen --target web → web/pkg"
  rm -rf web/pkg
  wasm-bindgen --target web --out-dir web/pkg "$WASM"
  if [ "$WASM_OPT" != none ]; then
    step "wasm-opt $WASM_OPT"
    # The features rustc's wasm32 target enables by default, plus simd128 (.cargo/config.toml).
    node_modules/.bin/wasm-opt "$WASM_OPT" \
      --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext --enable-mutable-globals \
      --enable-reference-types --enable-multivalue --enable-simd \
      web/pkg/studio_wasm_bg.wasm -o web/pkg/studio_wasm_bg.opt.wasm
    mv web/pkg/studio_wasm_bg.opt.wasm web/pkg/studio_wasm_bg.wasm
  fi
  echo "$SUM" > "$STAMP"
fi
RAW=$(stat -c %s "$WASM")
OPT=$(stat -c %s web/pkg/studio_wasm_bg.wasm)
GZ=$(gzip -9 -c web/pkg/studio_wasm_bg.wasm | wc -c)
awk -v r="$RAW" -v o="$OPT" -v g="$GZ" 'BEGIN { printf "wasm: %.1f MB from rustc, %.1f MB after wasm-opt, %.1f MB gzip -9\n", r/1e6, o/1e6, g/1e6 }'

step "typecheck + vite build → web/dist"
node_modules/.bin/tsc --noEmit -p tsconfig.json
node_modules/.bin/vite build --logLevel warn
echo "built web/dist"
