#!/usr/bin/env bash
# `npm start`: installs what is missing, builds, and runs the studio on the bundled model.
# Until the browser studio lands, this generates one image with the native CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
. scripts/env.sh
MODEL="${MODEL:-models/classroom}"
[ -d "$MODEL" ] || MODEL=tests/fixtures/tiny-sd1
PROMPT="${PROMPT:-a big red star on a blue striped background}"
cargo build --locked -p cli --bin studio
"$CARGO_TARGET_DIR/debug/studio" generate --model "$MODEL" --prompt "$PROMPT" --steps 25 --out studio-output.png
echo "open studio-output.png"
