#!/usr/bin/env bash
# Builds the studio and serves it on http://127.0.0.1:4173 (or $PORT) with the bundled model.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build-web.sh
PORT="${PORT:-4173}"
echo
echo "Erasure Studio: http://127.0.0.1:$PORT/   (Ctrl-C stops it)"
exec node_modules/.bin/vite preview --host 127.0.0.1 --port "$PORT" --strictPort
