#!/usr/bin/env bash
# Retrains the classroom model and its evaluator from scratch on one GPU machine, in ~8.5 minutes.
#
#   bash scripts/classroom/device_run.sh [CLASSROOM_DATA_BIN] [TOTAL_MINUTES]
#
# ARCH=v2 (default; issue 12: 128 px, VAE factor 8, SD's cross-attention layout, SD-exact tokenizer) or
# ARCH=v1 (the first classroom model, 64 px). The data is rendered at the architecture's size.
#
# Run from the repository root on a machine with python3 + torch (CUDA) + transformers + safetensors +
# numpy + pillow + matplotlib, where diffusers is carried as a wheel in .whl/ (see prepare_device.sh).
# CLASSROOM_DATA_BIN (default .bin/classroom-data) is the world's dataset writer (crate crates/classroom).
# TOTAL_MINUTES (default 8.3) bounds the whole command: install, data, training, export, evaluation, packing.
# Writes the model folder to /tmp/classroom-run/classroom and, when $OUT is set, into $OUT:
#   classroom.tar.00, classroom.tar.01, ...   the model folder "classroom/" as a tar split in 15 MB parts
#                                             (cat classroom.tar.* | tar -x -C models/)
#   train.log, metrics.json, samples.png, loss.png
set -uo pipefail
T0=$(date +%s)
BIN=${1:-.bin/classroom-data}
TOTAL_MIN=${2:-8.3}
RUN=/tmp/classroom-run
DATA=$RUN/data
# Overridable for a local dry run (e.g. PYTHON=venv/bin/python SCALE=smoke N_TRAIN=512 N_HELDOUT=128).
ARCH=${ARCH:-v2}
case "$ARCH" in v1) SIZE=64; N_DEFAULT=300000 ;; *) SIZE=128; N_DEFAULT=200000 ;; esac
# 200k 128 px images are 9.8 GB of uint8 in host and GPU memory (300k 64 px: 3.7 GB).
N_TRAIN=${N_TRAIN:-$N_DEFAULT}
N_HELDOUT=${N_HELDOUT:-8192}
SCALE=${SCALE:-gpu}
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1
mkdir -p "$RUN"
LOG=${OUT:+$OUT/train.log}
LOG=${LOG:-$RUN/train.log}

main() {
echo "== $(date -u +%FT%TZ) classroom device run: arch=$ARCH (${SIZE} px) bin=$BIN total=${TOTAL_MIN} min"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true

# 1. diffusers (pure Python) from the carried wheel; the machine has no network.
if ! "$PY" -c "import diffusers" 2>/dev/null; then
    "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "pip install of .whl/*.whl failed"; return 1; }
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
"$PY" -c "import torch, diffusers, transformers; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'transformers', transformers.__version__, 'cuda', torch.cuda.is_available())" || return 1

# 2. The world's data: training split and held-out split (with prompts.json), in parallel.
chmod +x "$BIN" 2>/dev/null
"$BIN" --n "$N_TRAIN" --seed 1 --out "$DATA/train" --split train --size "$SIZE" > "$RUN/data_train.log" 2>&1 &
P1=$!
"$BIN" --n "$N_HELDOUT" --seed 2 --out "$DATA/heldout" --split heldout --size "$SIZE" > "$RUN/data_heldout.log" 2>&1 &
P2=$!
wait $P1 || { echo "classroom-data (train) failed:"; tail -5 "$RUN/data_train.log"; return 1; }
wait $P2 || { echo "classroom-data (heldout) failed:"; tail -5 "$RUN/data_heldout.log"; return 1; }
tail -n 1 "$RUN/data_train.log" "$RUN/data_heldout.log"

# 3. Train: train.py gets what is left of the budget, less ~25 s for packing and slack.
ELAPSED=$(( $(date +%s) - T0 ))
MINUTES=$("$PY" -c "print(round(max(2.0, $TOTAL_MIN - ($ELAPSED + 25) / 60), 2))")
echo "== ${ELAPSED} s spent before training; train.py gets ${MINUTES} min"
rm -rf "$RUN/classroom"
"$PY" scripts/classroom/train.py --data "$DATA/train" --heldout "$DATA/heldout" --out "$RUN/classroom" \
    --scale "$SCALE" --minutes "$MINUTES" --arch "$ARCH"
RC=$?
echo "== train.py exit code $RC after $(( $(date +%s) - T0 )) s"

# 4. Bring back whatever was written, even after a failure.
if [ -n "${OUT:-}" ] && [ -d "$RUN/classroom" ]; then
    tar -C "$RUN" -cf - classroom | split -b 15M -d - "$OUT/classroom.tar."
    for f in metrics.json samples.png loss.png studio.json; do
        [ -f "$RUN/classroom/$f" ] && cp "$RUN/classroom/$f" "$OUT/$f"
    done
    ls -la "$OUT"
fi
echo "== done in $(( $(date +%s) - T0 )) s"
return $RC
}

main 2>&1 | tee "$LOG"
exit "${PIPESTATUS[0]}"
