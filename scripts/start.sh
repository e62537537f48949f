#!/usr/bin/env bash
# `npm start`: installs what is missing, builds the wasm module and the page, and serves the studio
# on http://127.0.0.1:4173 (or $PORT) with the bundled classroom model. The native CLI is
# `cargo run -p cli --bin studio -- generate --model models/classroom --prompt "..."`.
set -euo pipefail
cd "$(dirname "$0")/.."
exec bash scripts/start-web.sh
