#!/usr/bin/env bash
# Runs a `studio batch` or `studio erasure-report` as a Slurm job array of N shards, then
# `studio merge` once every shard succeeded:
#   submit.sh --shards N [--wait] [--partition P] [--sbatch-arg ARG ...] -- batch|erasure-report ARGS...
# OUT is the --out (batch) or --work (erasure-report) folder; the logs go to OUT/logs/. Resuming: run
# the same command again (each shard skips the images it already finished). The studio binary is
# $STUDIO, else `studio` on PATH; it must be at the same path on the compute nodes (shared filesystem).
# Waiting polls scontrol, not sacct, so it works on clusters without accounting (slurmdbd).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"

die() { echo "submit.sh: $*" >&2; exit 2; }
usage="usage: submit.sh --shards N [--wait] [--partition P] [--sbatch-arg ARG ...] -- batch|erasure-report ARGS..."

shards="" wait=0 sbatch_args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --shards) [ $# -ge 2 ] || die "--shards needs a number ($usage)"; shards="$2"; shift 2 ;;
    --shards=*) shards="${1#*=}"; shift ;;
    --wait) wait=1; shift ;;
    --partition) [ $# -ge 2 ] || die "--partition needs a name"; sbatch_args+=("--partition=$2"); shift 2 ;;
    --partition=*) sbatch_args+=("$1"); shift ;;
    # The next word is sbatch's even when it starts with --, e.g. --sbatch-arg --time=30.
    --sbatch-arg) [ $# -ge 2 ] || die "--sbatch-arg needs a value"; sbatch_args+=("$2"); shift 2 ;;
    --sbatch-arg=*) sbatch_args+=("${1#*=}"); shift ;;
    --) shift; break ;;
    -h | --help) echo "$usage"; exit 0 ;;
    *) die "unknown option '$1' (put the studio command after --; $usage)" ;;
  esac
done
[ -n "$shards" ] || die "--shards N is required ($usage)"
if ! [[ "$shards" =~ ^[0-9]+$ ]] || [ "$shards" -lt 1 ]; then die "--shards must be a whole number ≥ 1, not '$shards'"; fi
[ $# -ge 1 ] || die "no studio command after -- ($usage)"
sub="$1"
case "$sub" in
  batch) out_flag=--out ;;
  erasure-report) out_flag=--work ;;
  *) die "the studio command must be batch or erasure-report, not '$sub'" ;;
esac
out="" prev=""
for a in "$@"; do
  case "$a" in
    --shard | --shard=*) die "leave --shard out: each array task adds its own --shard K/$shards" ;;
    "$out_flag="*) out="${a#*=}" ;;
  esac
  [ "$prev" = "$out_flag" ] && out="$a"
  prev="$a"
done
[ -n "$out" ] || die "studio $sub needs $out_flag OUT: the folder the shards and the merge share"
command -v sbatch >/dev/null || die "sbatch not found: run this on a Slurm login node (module load slurm?)"

# Absolute, so the jobs find it whatever their working directory; sbatch exports the environment.
STUDIO="${STUDIO:-studio}"
case "$STUDIO" in
  /*) ;;
  */*) STUDIO="$PWD/$STUDIO" ;;
  *) STUDIO="$(command -v "$STUDIO")" ||
    die "studio is not on PATH: set STUDIO to the binary (cargo build --release -p cli → target/release/studio) on a filesystem the nodes share" ;;
esac
[ -x "$STUDIO" ] || die "STUDIO=$STUDIO is not an executable file"
export STUDIO

mkdir -p "$out/logs"
logs="$(cd "$out/logs" && pwd)"
# --parsable prints "jobid" or "jobid;cluster".
array_id="$(sbatch --parsable --array="0-$((shards - 1))" --job-name="studio-$sub" \
  --output="$logs/shard-%A_%a.out" "${sbatch_args[@]}" \
  "$here/batch-array.sbatch" "$shards" "$@")" || die "sbatch refused the array job (see above)"
array_id="${array_id%%;*}"
# kill-on-invalid-dep: a failed shard cancels the merge instead of leaving it pending forever.
merge_id="$(sbatch --parsable --dependency="afterok:$array_id" --kill-on-invalid-dep=yes \
  --output="$logs/merge-%j.out" "${sbatch_args[@]}" "$here/merge.sbatch" "$out")" ||
  die "sbatch refused the merge job (the array $array_id is queued: scancel $array_id)"
merge_id="${merge_id%%;*}"
echo "array job $array_id ($shards shards of studio $sub), merge job $merge_id; logs in $logs"
[ "$wait" = 1 ] || exit 0

# "2 COMPLETED 1 RUNNING": -r lists every array task, -t all the finished ones too.
tasks() { squeue -h -r -t all -j "$1" -o %T 2>/dev/null | sort | uniq -c | xargs; }
last="" misses=0
while :; do
  # A controller that restarts or is busy fails a few polls; a job it has forgotten fails them all.
  if ! line="$(scontrol show job -o "$merge_id" 2>&1)"; then
    misses=$((misses + 1))
    [ "$misses" -lt 5 ] || die "scontrol cannot show the merge job $merge_id ($line): see $logs/merge-$merge_id.out"
    sleep "${SUBMIT_POLL_S:-5}"
    continue
  fi
  misses=0
  state="$(grep -o 'JobState=[A-Z_]*' <<<"$line" | cut -d= -f2)"
  now="merge $state, shards: $(tasks "$array_id")"
  [ "$now" = "$last" ] || echo "$(date +%T) $now"
  last="$now"
  case "$state" in
    PENDING | CONFIGURING | RUNNING | COMPLETING | SUSPENDED | REQUEUED | RESIZING | REQUEUE_HOLD | REQUEUE_FED) ;;
    COMPLETED) echo "merged into $out"; exit 0 ;;
    *)
      echo "submit.sh: the merge job $merge_id ended $state ($(grep -o 'Reason=[^ ]*' <<<"$line")); the shards:" >&2
      # " ExitCode=", not DerivedExitCode.
      scontrol show job -o "$array_id" | grep -oE '(ArrayTaskId|JobState| ExitCode)=[^ ]*' | paste - - - >&2 || true
      echo "logs: $logs" >&2
      code="$(grep -oE ' ExitCode=[0-9]+' <<<"$line" | cut -d= -f2)"
      exit "$([ "${code:-0}" -gt 0 ] && echo "$code" || echo 1)"
      ;;
  esac
  sleep "${SUBMIT_POLL_S:-5}"
done
