#!/usr/bin/env bash
# The formatter and linters `npm test` runs first: rustfmt (rustfmt.toml) in check mode, clippy with
# warnings denied on the native workspace and on the wasm32 build of studio-wasm, the import-circle
# check (web/ and crates/studio-wasm) and the "Copied from" check (`tsc --noEmit` needs the wasm module's
# types: build-web.sh runs it before vite build). `npm run fmt`
# rewrites the Rust sources in place.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh

step() { printf '\n== %s\n' "$*"; }

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (native workspace, all targets, warnings denied)"
cargo clippy --workspace --all-targets --features studio-wasm/bench --locked -- -D warnings

step "cargo clippy (studio-wasm on wasm32, warnings denied)"
cargo clippy -p studio-wasm --target wasm32-unknown-unknown --locked -- -D warnings

step "import circles, copies"
node scripts/check-import-cycles.mjs web crates/studio-wasm
node scripts/check-copies.mjs crates web
