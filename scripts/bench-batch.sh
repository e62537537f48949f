#!/usr/bin/env bash
# Batch throughput (issue 19, BENCHMARKS.md "Batch runs and shards"): the same `studio batch` run
# (the classroom model, CPU) as one process and as N concurrent shard processes on this machine,
# in the same run, then `studio merge` of the shards; checks the merged manifest equals the
# single run's and prints images/s of each and the merge's share of the wall time.
#   bash scripts/bench-batch.sh [--prompts N] [--shards N] [--steps S] [--threads T]
# --threads sets RAYON_NUM_THREADS of every process (default: unset, burn's default of one
# thread a core), so "N shards" can also be read as N processes of T threads.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/env.sh
prompts=12 shards=2 steps=25 threads=""
while [ $# -gt 0 ]; do
  case "$1" in
    --prompts) prompts="$2"; shift 2;;
    --shards) shards="$2"; shift 2;;
    --steps) steps="$2"; shift 2;;
    --threads) threads="$2"; shift 2;;
    *) echo "unknown argument $1 (use --prompts N --shards N --steps S --threads T)" >&2; exit 2;;
  esac
done
cargo build --release --locked -p cli
studio="$CARGO_TARGET_DIR/release/studio"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# Prompts of the classroom world, each with its own seed.
{
  echo "prompt,seed"
  words=("a red skull" "a blue triangle on a striped background" "a green circle" "a yellow star"
         "a white square on a dotted background" "a purple heart" "zorbo" "a glowing orange circle")
  for i in $(seq 0 $((prompts - 1))); do echo "\"${words[$((i % ${#words[@]}))]}\",$i"; done
} > "$work/prompts.csv"
[ -n "$threads" ] && export RAYON_NUM_THREADS="$threads"
args=(batch --model models/classroom --prompts "$work/prompts.csv" --steps "$steps")
now() { date +%s.%N; }

t0=$(now)
"$studio" "${args[@]}" --out "$work/single" 2> "$work/single.log"
t1=$(now)
pids=()
for k in $(seq 0 $((shards - 1))); do
  "$studio" "${args[@]}" --out "$work/sharded" --shard "$k/$shards" 2> "$work/shard$k.log" &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
t2=$(now)
"$studio" merge "$work/sharded" 2> "$work/merge.log"
t3=$(now)
cmp "$work/single/manifest.jsonl" "$work/sharded/manifest.jsonl"
cmp "$work/single/summary.json" "$work/sharded/summary.json"
awk -v n="$prompts" -v k="$shards" -v a="$t0" -v b="$t1" -v c="$t2" -v d="$t3" -v th="${threads:-default}" 'BEGIN {
  one = b - a; sh = c - b; m = d - c;
  printf "classroom model, %d images, %s rayon threads a process, %d cores\n", n, th, '"$(nproc)"';
  printf "one process:   %.1f s, %.3f images/s (model load included)\n", one, n / one;
  printf "%d shards:      %.1f s, %.3f images/s (%.2fx one process)\n", k, sh, n / sh, one / sh;
  printf "merge:         %.3f s (%.2f %% of the sharded wall time)\n", m, 100 * m / (sh + m);
  printf "merged manifest and summary equal the single run: yes\n";
}'
