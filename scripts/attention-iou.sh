#!/usr/bin/env bash
# The README's attention-map figure: IoU of each object word's DAAM map with the object mask
# (classroom::foreground) on the classroom model, before and after UCE erases "skull" with its
# defaults (the last token) and with tokens=legacy (the word through the padding), over a few
# prompts × seeds; prints a Markdown table and writes the raw JSON lines.
#
#   bash scripts/attention-iou.sh [OUT_DIR]     (~8 min on 2 cores with the debug CLI)
#
# Uses $STUDIO_CLI, else the release build, else the debug build in $CARGO_TARGET_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
OUT=${1:-/tmp/attention-iou}
mkdir -p "$OUT"
CLI=${STUDIO_CLI:-}
for c in "$CARGO_TARGET_DIR/release/studio" "$CARGO_TARGET_DIR/debug/studio"; do
  [[ -z "$CLI" && -x "$c" ]] && CLI=$c
done
[[ -x "$CLI" ]] || { echo "no studio binary: cargo build -p cli" >&2; exit 1; }
MODEL=models/classroom
EDIT="$OUT/uce-skull.safetensors"
"$CLI" erase --model "$MODEL" --method uce --concepts skull --out "$EDIT" 2>/dev/null
LEGACY="$OUT/uce-skull-legacy.safetensors"
"$CLI" erase --model "$MODEL" --method uce --concepts skull --tokens legacy --out "$LEGACY" 2>/dev/null
PROMPTS=("a skull" "a skull on a blue background" "a red circle" "a blue star on a striped background" "a green triangle")
SEEDS=(0 1 2 3)
: > "$OUT/iou.jsonl"
for p in "${PROMPTS[@]}"; do
  for s in "${SEEDS[@]}"; do
    for v in original uce legacy; do
      extra=()
      [[ $v == uce ]] && extra=(--edit "$EDIT")
      [[ $v == legacy ]] && extra=(--edit "$LEGACY")
      maps="$OUT/maps.safetensors"
      "$CLI" attention --model "$MODEL" --prompt "$p" --seed "$s" --scheduler ddim --out "$OUT/img.png" --maps "$maps" "${extra[@]}" 2>/dev/null
      node -e '
        const fs = require("fs");
        const b = fs.readFileSync(process.argv[1]);
        const n = Number(b.readBigUInt64LE(0));
        const m = JSON.parse(b.subarray(8, 8 + n).toString()).__metadata__;
        console.log(JSON.stringify({ prompt: process.argv[2], seed: +process.argv[3], variant: process.argv[4], iou: JSON.parse(m.iou) }));
      ' "$maps" "$p" "$s" "$v" >> "$OUT/iou.jsonl"
    done
  done
done
node -e '
  const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
  const objects = new Set(["skull", "circle", "star", "triangle"]);
  const rows = new Map();
  for (const l of lines) for (const w of l.iou) if (objects.has(w.word) && w.iou != null) {
    const key = `${l.prompt}|${w.word}`;
    const r = rows.get(key) ?? { original: [], uce: [], legacy: [] };
    r[l.variant].push(w.iou);
    rows.set(key, r);
  }
  const mean = (a) => a.reduce((x, y) => x + y, 0) / Math.max(1, a.length);
  console.log("| prompt | word | IoU original | after UCE(skull), last token | after UCE(skull), tokens=legacy | seeds |");
  console.log("|---|---|---|---|---|---|");
  for (const [k, r] of rows) { const [p, w] = k.split("|"); console.log(`| ${p} | ${w} | ${mean(r.original).toFixed(3)} | ${mean(r.uce).toFixed(3)} | ${mean(r.legacy).toFixed(3)} | ${r.original.length} |`); }
' "$OUT/iou.jsonl"
