#!/usr/bin/env bash
# The cluster scripts end to end: starts a private one-node Slurm cluster (munged, slurmctld,
# slurmd on 127.0.0.1, everything in a temp dir that a trap removes), then checks that
# scripts/cluster/slurm/submit.sh's sharded runs + merge give byte-identical files to unsharded
# runs, for `studio batch` and `studio erasure-report`; plus the static check of the k8s manifests.
# Needs root with apt-get (installs slurm-wlm and munge) or Slurm already installed; else it prints
# SKIPPED and exits 0. The binary is $STUDIO (default $CARGO_TARGET_DIR/debug/studio).
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$PWD"
. scripts/env.sh
STUDIO="${STUDIO:-$CARGO_TARGET_DIR/debug/studio}"
export PATH="$PATH:/usr/sbin:/sbin" # slurmctld, slurmd and munged live in sbin

failures=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
skip() {
  printf '\n!!!!!!!!\nSKIPPED: the Slurm test needs slurmctld, slurmd, munged and sbatch (%s)\n!!!!!!!!\n\n' "$*"
  [ "$failures" = 0 ] || { echo "FAIL: $failures check(s) failed before the skip"; exit 1; }
  exit 0
}

echo "== k8s manifests (static check)"
k8s=scripts/cluster/k8s
if node $k8s/check.mjs $k8s/batch-job.yaml $k8s/merge-job.yaml $k8s/pvc.yaml; then
  pass "k8s manifests"
else
  fail "k8s manifests"
fi
# The check is not vacuous: completions 4 against --shard .../3 must fail.
if sed 's/^  completions: .*/  completions: 4/' $k8s/batch-job.yaml | node $k8s/check.mjs /dev/stdin $k8s/merge-job.yaml 2>/dev/null; then
  fail "k8s check accepted completions ≠ N"
else
  pass "k8s check rejects completions ≠ N"
fi

case "$STUDIO" in /*) ;; *) STUDIO="$repo/$STUDIO" ;; esac
[ -x "$STUDIO" ] || { echo "FAIL: no studio binary at $STUDIO: build it (cargo build -p cli) or set STUDIO"; exit 1; }
export STUDIO

have_slurm() { for c in munged slurmctld slurmd sbatch sinfo squeue scontrol scancel; do command -v "$c" >/dev/null || return 1; done; }
if ! have_slurm; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    skip "not installed, and installing needs root and apt-get: apt-get install slurm-wlm munge"
  fi
  echo "== apt-get install slurm-wlm munge"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge >/dev/null; } ||
    skip "apt-get install slurm-wlm munge failed"
  have_slurm || skip "slurm-wlm and munge are installed but a command is still missing"
fi
t0=$SECONDS

T="$(mktemp -d "${TMPDIR:-/tmp}/studio-slurm.XXXXXX")"
# munged refuses a socket in a directory that not everyone can traverse (mktemp makes it 0700).
chmod 755 "$T"
mkdir -p "$T/munge" "$T/state" "$T/spool" "$T/log" "$T/work"
# Marks the jobs of this cluster (sbatch exports the environment), so that teardown can find
# stray ones by it and by nothing broader.
export STUDIO_SLURM_TEST="$T"
daemons=()
# The long steps run in the background: bash runs a trap only once its foreground child is done,
# and a TERM (a CI timeout) must tear the cluster down now, not after the step.
step=""
run() {
  "$@" &
  step=$!
  local rc=0
  wait "$step" || rc=$?
  step=""
  return "$rc"
}

dump_logs() {
  for f in "$T"/log/* "$T"/work/*/logs/*; do
    [ -s "$f" ] && { echo "--- $f (tail)"; tail -n 25 "$f"; }
  done
  return 0
}
# What still runs for this cluster besides the daemons: slurmstepd (it daemonizes away from slurmd,
# keeping slurmd's working directory, $T) and the jobs (they carry the marker).
leftovers() {
  local p
  for p in /proc/[0-9]*; do
    p="${p#/proc/}"
    case " ${daemons[*]-} $$ $BASHPID " in *" $p "*) continue ;; esac
    if [ "$(readlink "/proc/$p/cwd" 2>/dev/null)" = "$T" ] || grep -qzx "STUDIO_SLURM_TEST=$T" "/proc/$p/environ" 2>/dev/null; then
      echo "$p"
    fi
  done
}
stepds() { for p in $(leftovers); do [ "$(cat "/proc/$p/comm" 2>/dev/null)" != slurmstepd ] || echo "$p"; done; }
cleanup() {
  local rc=$?
  set +e
  [ -z "$step" ] || kill "$step" 2>/dev/null
  cd / # out of $T, so that this shell is not one of the leftovers
  export -n STUDIO_SLURM_TEST # nor the commands below
  if [ "$rc" != 0 ] || [ "$failures" != 0 ]; then dump_logs; fi
  if [ ${#daemons[@]} -ge 2 ] && kill -0 "${daemons[1]}" 2>/dev/null; then
    # Our controller only (SLURM_CONF is ours): cancel what is left, so slurmstepd ends its jobs.
    mapfile -t ids < <(squeue -h -o %A 2>/dev/null)
    [ ${#ids[@]} = 0 ] || scancel "${ids[@]}"
    # Let the slurmstepds finish (they report to slurmd) before slurmd goes.
    for _ in $(seq 40); do [ -z "$(squeue -h 2>/dev/null)$(stepds)" ] && break; sleep 0.25; done
  fi
  for pid in ${daemons[@]+"${daemons[@]}"}; do kill "$pid" 2>/dev/null; done
  for pid in ${daemons[@]+"${daemons[@]}"}; do
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    kill -9 "$pid" 2>/dev/null
    wait "$pid" 2>/dev/null
  done
  for pid in $(leftovers); do
    echo "teardown: killing stray $(cat /proc/"$pid"/comm 2>/dev/null) ($pid)"
    kill -9 "$pid" 2>/dev/null
  done
  # An exited slurmstepd stays a zombie until init reaps it (this VM's init takes ~0.3 s); wait
  # for that, so that `pgrep slurm` right after the test shows nothing (a zombie has no cwd to
  # tell whose it is, so any slurmstepd counts: 2 s at most).
  for _ in $(seq 20); do grep -qs '^slurmstepd$' /proc/[0-9]*/comm || break; sleep 0.1; done
  rm -rf "$T"
  exit "$rc"
}
trap cleanup EXIT
trap 'echo "FAIL: interrupted"; exit 130' INT TERM

# Two free ports below Linux's ephemeral range (32768+), far from Slurm's defaults 6817/6818.
port_free() {
  if command -v ss >/dev/null; then
    [ -z "$(ss -Hltn "sport = :$1")" ]
  elif (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; then
    return 1
  fi
}
free_port() {
  local p
  for _ in $(seq 100); do
    p=$((20000 + RANDOM % 12000))
    [ "$p" != "${1:-}" ] && port_free "$p" && { echo "$p"; return; }
  done
  echo "no free port found in 20000-31999" >&2
  return 1
}
ctld_port="$(free_port)"
slurmd_port="$(free_port "$ctld_port")"
user="$(id -un)"
node=studio-node

echo "== munged"
dd if=/dev/urandom of="$T/munge/key" bs=1024 count=1 status=none
chmod 400 "$T/munge/key"
# Each daemon in its own session (setsid, which does not fork here, so $! stays its pid): a TERM to
# this script's process group (timeout, CI) must leave them up for the teardown to cancel the jobs.
# -F (foreground, so that $! is its pid) logs to stderr.
setsid munged -F --key-file="$T/munge/key" --socket="$T/munge/sock" --pid-file="$T/munge/pid" \
  --seed-file="$T/munge/seed" >"$T/log/munged.log" 2>&1 &
daemons+=($!)
for _ in $(seq 40); do munge -n -S "$T/munge/sock" >/dev/null 2>&1 && break; sleep 0.25; done
munge -n -S "$T/munge/sock" >/dev/null || { echo "FAIL: munged did not start"; exit 1; }

# Slurm in a container, without cgroups or a system config (see the comments on each line).
touch "$T/plugstack.conf"
cat >"$T/slurm.conf" <<EOF
ClusterName=studiotest
# slurmctld accepts "localhost" as its own name whatever the hostname; No(Ctld)InAddrAny bind
# slurmctld and slurmd to 127.0.0.1 (their addresses below) instead of every interface.
SlurmctldHost=localhost(127.0.0.1)
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$T/munge/sock
StateSaveLocation=$T/state
SlurmdSpoolDir=$T/spool
SlurmctldPidFile=$T/slurmctld.pid
SlurmdPidFile=$T/slurmd.pid
# Not the system's /etc/slurm/plugstack.conf (SPANK plugins).
PlugStackConfig=$T/plugstack.conf
# The default mail program is absent, and slurmctld complains.
MailProg=/bin/true
# No cgroups (proctrack/cgroup, task/cgroup need a writable cgroup hierarchy): jobs are tracked
# by their parent pid, not confined, and not measured.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
# CPUs are the only consumable: memory is neither scheduled nor enforced.
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
# The node is what this file says (CPUs=nproc), whatever slurmd detects (sockets, memory).
SlurmdParameters=config_overrides
ReturnToService=2
# Fast: a scheduling pass every second (default 60), 2 s from SIGTERM to SIGKILL on cancel (30).
SchedulerParameters=sched_interval=1
KillWait=2
SlurmdTimeout=30
# Finished jobs stay in the controller 5 min: submit.sh --wait and afterok read them there.
MinJobAge=300
NodeName=$node NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$(nproc) State=UNKNOWN
PartitionName=studio Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF="$T/slurm.conf"

echo "== slurmctld (port $ctld_port), slurmd (port $slurmd_port)"
# -D: in the foreground (its pid is $!), logging to stderr (no log file: it would be a second copy).
# Started in $T: slurmstepd inherits slurmd's working directory, which is how teardown knows ours.
(cd "$T" && exec setsid slurmctld -D >"$T/log/slurmctld.log" 2>&1) &
daemons+=($!)
# -N: the node's name in slurm.conf, not the hostname.
(cd "$T" && exec setsid slurmd -D -N "$node" >"$T/log/slurmd.log" 2>&1) &
daemons+=($!)
for _ in $(seq 60); do
  [ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ] && break
  sleep 0.5
done
[ "$(sinfo -h -n "$node" -o %T 2>/dev/null)" = idle ] || { echo "FAIL: the node is not idle after 30 s: $(sinfo 2>&1)"; exit 1; }
echo "cluster up in $((SECONDS - t0)) s"

# ---- The checks: sharded runs through Slurm against unsharded runs of the same protocol.
cd "$T/work"
model="$repo/models/classroom"
cat >prompts.csv <<'EOF'
prompt,evaluation_seed
a red skull,1
a blue triangle on a striped background,2
a green star,3
a yellow circle,4
EOF
submit=("$repo/scripts/cluster/slurm/submit.sh" --wait --partition studio --sbatch-arg=--cpus-per-task=1)
export SUBMIT_POLL_S=1
same_files() { # same_files NAME A B: cmp, with a PASS/FAIL line
  if [ ! -f "$2" ] || [ ! -f "$3" ]; then
    fail "$1 ($([ -f "$2" ] && echo "$3" || echo "$2") is missing)"
  elif cmp "$2" "$3"; then pass "$1"; else fail "$1 ($2 and $3 differ)"; fi
}

echo "== (a) unsharded studio batch"
t=$SECONDS
if run "$STUDIO" batch --model "$model" --prompts prompts.csv --steps 4 --out single; then
  pass "unsharded batch ($((SECONDS - t)) s)"
else
  fail "unsharded batch"
fi
echo "== (b) studio batch as 3 Slurm shards + merge"
t=$SECONDS
if run "${submit[@]}" --shards 3 -- batch --model "$model" --prompts prompts.csv --steps 4 --out sharded; then
  pass "sharded batch through Slurm ($((SECONDS - t)) s)"
else
  fail "sharded batch through Slurm"
fi
same_files "batch manifest.jsonl" single/manifest.jsonl sharded/manifest.jsonl
same_files "batch summary.json" single/summary.json sharded/summary.json
# Every image, and the same set of them (the manifests could agree on paths that are missing).
pngs() { (cd "$1" && find images -name '*.png' | sort); }
if [ -n "$(pngs single 2>/dev/null)" ] && [ "$(pngs single)" = "$(pngs sharded 2>/dev/null)" ]; then
  bad=0
  while IFS= read -r f; do cmp -s "single/$f" "sharded/$f" || { echo "differs: $f"; bad=1; }; done < <(pngs single)
  if [ "$bad" = 0 ]; then pass "batch images ($(pngs single | wc -l) PNGs identical)"; else fail "batch images"; fi
else
  fail "batch images (none, or not the same files in single/images and sharded/images)"
fi

echo "== (c) studio erasure-report, unsharded and as 2 Slurm shards + merge"
# shellcheck disable=SC2054 # the commas are studio's list syntax
report=(erasure-report --model "$model" --concepts skull --methods original,uce --seeds 1 --per-group 2 --steps 4)
t=$SECONDS
if run "$STUDIO" "${report[@]}" --json report.json --out report.md; then
  pass "unsharded erasure-report ($((SECONDS - t)) s)"
else
  fail "unsharded erasure-report"
fi
t=$SECONDS
if run "${submit[@]}" --shards 2 -- "${report[@]}" --work report-sharded; then
  pass "sharded erasure-report through Slurm ($((SECONDS - t)) s)"
else
  fail "sharded erasure-report through Slurm"
fi
same_files "report.json" report.json report-sharded/report.json
same_files "report.md" report.md report-sharded/report.md

echo "== $((SECONDS - t0)) s from the cluster's start (apt excluded)"
if [ "$failures" != 0 ]; then
  echo "FAIL: $failures cluster check(s) failed"
  exit 1
fi
echo "PASS: all cluster checks"
