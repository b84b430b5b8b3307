#!/usr/bin/env bash
# The request-path and across-hosts benchmarks from a bench/bundle.sh folder, on a machine without
# this project's packages (docs/benchmarks.md, "Runs on other machines"), as root (the across-hosts
# harness makes network namespaces). Everything is compared within this run only.
#   bench/portable_run.sh BUNDLE OUT_DIR LABEL [VARIANT 'ENV']...
# VARIANT 'ENV' pairs are the across-hosts variants, alternated run by run (bench/ab_across_hosts.sh;
# e.g. old 'SHMARRAY_BRIDGE=/old/bundle/bin/shmarray-bridge' new ''); the default compares bridges
# that sleep at once (SHMARRAY_BRIDGE_SPIN_US=0) with the default spin policy.
# Knobs (environment):
#   PARTS       which parts, of "probe cp ah large" (default: all)
#   CP_BUNDLES  request path: more bundles to alternate with BUNDLE, as LABEL=DIR words
#   QUICK=1     a short smoke run (what the script itself is checked with on the dev VM)
# Writes OUT_DIR/{probe,control_plane,across_hosts_ab,across_hosts}.csv and prints the summaries.
# Run it under `taskset -c 0-3` to see the machine as a 4-CPU host (the bridges' spin policy
# counts the CPUs they may run on).
set -uo pipefail
BUNDLE=$(cd "$1" && pwd)
OUT=$2
LABEL=$3
shift 3
variants=("$@")
[ ${#variants[@]} -gt 0 ] || variants=(sleep 'SHMARRAY_BRIDGE_SPIN_US=0' default '')
PARTS=${PARTS:-probe cp ah large}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
# shellcheck source=/dev/null
. "$BUNDLE/env.sh"
log() { echo "== $(date -u +%T) $*"; }
has() { [[ " $PARTS " == *" $1 "* ]]; }

log "machine ($LABEL)"
uname -a
echo "cpus: $(nproc) usable here, $(getconf _NPROCESSORS_ONLN) online"
grep -m1 'model name' /proc/cpuinfo
free -g | head -2
echo "clocksource: $(cat /sys/devices/system/clocksource/clocksource0/current_clocksource 2>/dev/null)"
for f in "$BUNDLE"/bin/*; do ldd "$f" 2>/dev/null | grep 'not found' | sed "s|^|$(basename "$f"): |"; done
if ! grep -q ' /dev/shm ' /proc/mounts; then
  log "no /dev/shm: mounting a tmpfs there"
  mkdir -p /dev/shm && mount -t tmpfs -o size=16g,mode=1777 tmpfs /dev/shm
fi
df -h /dev/shm | tail -1

if [ -n "${QUICK:-}" ]; then
  cp_runs=2 probe_mib=16 sizes=4KiB,1MiB large= repeat=20 runs=1
else
  cp_runs=7 probe_mib=64 sizes=4KiB,1MiB,64MiB large=1GiB repeat=50 runs=2
fi

if has probe; then
  log "probe (per-call costs: shows whether system calls and page faults are cheap here)"
  timeout 60 bench_probe --mib "$probe_mib" --csv "$OUT/probe.csv" --machine "$LABEL"
fi

# One request-path run: a fresh broker of bundle $2 and its bench; $1 labels the row. With $3 =
# awake, broker and client are pinned to CPUs 1 and 2 (0 and 1 on 2 CPUs) and a nice-19 busy loop runs on each, so
# that neither CPU is idle between requests (a wake-up then preempts the loop instead of waking a
# halted CPU: what a busy machine sees).
cp_run() {
  local label=$1 bundle=$2 mode=$3 dir pid pin_b=() pin_c=() loops=()
  if [ "$mode" = awake ]; then
    local a=1 b=2
    [ "$(nproc)" -ge 3 ] || { a=0 b=1; }
    pin_b=(taskset -c $a) pin_c=(taskset -c $b)
    for c in $a $b; do taskset -c "$c" nice -n 19 sh -c 'while :; do :; done' & loops+=($!); done
  fi
  dir=$(mktemp -d /tmp/shmarray-cp-XXXXXX)
  "${pin_b[@]}" "$bundle/bin/shmarrayd" --socket "$dir/s.sock" --log-level warn &
  pid=$!
  for _ in $(seq 1 200); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
  "${pin_c[@]}" timeout 120 "$bundle/bin/bench_control_plane" --socket "$dir/s.sock" --clients 1 \
    --iterations 2000 --machine "$label $mode" --csv "$OUT/control_plane.csv" \
    >"$OUT/cp.log" 2>&1 || { echo "request path $label $mode failed:"; cat "$OUT/cp.log"; }
  kill "$pid"
  wait "$pid" 2>/dev/null
  [ ${#loops[@]} -eq 0 ] || { kill "${loops[@]}"; wait "${loops[@]}" 2>/dev/null; }
  rm -rf "$dir"
}

if has cp; then
  cp_bundles=("$LABEL=$BUNDLE")
  for b in ${CP_BUNDLES:-}; do cp_bundles+=("$b"); done
  log "request path: $cp_runs runs of each of ${#cp_bundles[@]} build(s), idle and awake CPUs, alternating"
  for r in $(seq 1 "$cp_runs"); do
    for mode in idle awake; do
      for b in "${cp_bundles[@]}"; do cp_run "${b%%=*}" "${b#*=}" "$mode"; done
    done
  done
  python3 "$HERE/control_plane_ab_summary.py" "$OUT/control_plane.csv"
fi

common=(--shmarrayd "$BUNDLE/bin/shmarrayd" --ucx-perftest "$BUNDLE/bin/ucx_perftest"
  --links loopback,veth --repeat "$repeat")
# The bridges' CPU at 1000 versions a second (what their polling costs), in every across-hosts
# run.
paced=(--paced-hz 1000)
if has ah; then
  log "across hosts: variants ${variants[*]}, alternating"
  timeout 300 "$HERE/ab_across_hosts.sh" "$runs" "$OUT/ab" "$BUNDLE/bin/bench_across_hosts" \
    "${variants[@]}" -- "${common[@]}" "${paced[@]}" --sizes "$sizes" --repeat-large 6 --blocks 3
  for f in "$OUT"/ab/*.log; do
    grep -iE 'fail|error|skip' "$f" | sed "s|^|$(basename "$f"): |" | head -5
  done
  cp "$OUT/ab/across_hosts.csv" "$OUT/across_hosts_ab.csv" 2>/dev/null
fi
if has large && [ -n "$large" ]; then
  last=${variants[${#variants[@]}-1]}
  log "across hosts: $large (the last variant: ${variants[${#variants[@]}-2]})"
  # shellcheck disable=SC2086  # the variant's NAME=value words are split on purpose
  env $last timeout 150 bench_across_hosts "${common[@]}" --sizes "$large" \
    --repeat-large 4 --blocks 2 --machine "$LABEL" --csv "$OUT/across_hosts.csv" 2>&1 |
    grep -E 'GB/s|rror|kip'
fi
log done
