#!/usr/bin/env bash
# The request-path and across-hosts benchmarks from a bench/bundle.sh folder, on a machine without
# this project's packages (docs/benchmarks.md, "Runs on other machines"), as root (the across-hosts
# harness makes network namespaces). Everything is compared within this run only.
#   bench/portable_run.sh BUNDLE OUT_DIR [LABEL]
# Writes OUT_DIR/{probe,control_plane,across_hosts}.csv and prints the summaries. Set
# QUICK=1 for a short smoke run (what the script itself is checked with on the dev VM).
set -uo pipefail
BUNDLE=$(cd "$1" && pwd)
OUT=$2
LABEL=${3:-$(hostname)}
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$OUT"
# shellcheck source=/dev/null
. "$BUNDLE/env.sh"
log() { echo "== $(date -u +%T) $*"; }

log machine
uname -a
echo "cpus: $(nproc)"
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

log "probe (per-call costs: shows whether system calls and page faults are cheap here)"
timeout 60 bench_probe --mib "$probe_mib" --csv "$OUT/probe.csv" --machine "$LABEL"

log "request path: $cp_runs runs, a fresh broker each"
for r in $(seq 1 "$cp_runs"); do
  dir=$(mktemp -d /tmp/shmarray-cp-XXXXXX)
  shmarrayd --socket "$dir/s.sock" --log-level warn &
  pid=$!
  for _ in $(seq 1 200); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
  timeout 120 bench_control_plane --socket "$dir/s.sock" --clients 1 --iterations 2000 \
    --machine "$LABEL" --csv "$OUT/control_plane.csv" >"$OUT/control_plane.$r.log" 2>&1 ||
    { echo "control plane run $r failed:"; cat "$OUT/control_plane.$r.log"; }
  kill "$pid"
  wait "$pid" 2>/dev/null
  rm -rf "$dir"
done
python3 - "$OUT/control_plane.csv" <<'PY'
import collections, csv, statistics, sys
runs = []
for row in csv.DictReader(open(sys.argv[1])):
    if row["op"].startswith("baseline"):
        runs.append({"echo": float(row["p50_us"]), "ops": {}})
    runs[-1]["ops"][row["op"]] = float(row["p50_us"])
print(f"{len(runs)} runs; median of p50 and of the ratio to the same run's 64-byte echo")
print(f"{'operation':<16} {'p50 (us)':>9} {'x echo':>8}")
print(f"{'echo':<16} {statistics.median(s['echo'] for s in runs):9.2f} {'1.00x':>8}")
for op in ["create", "open read-only", "open read-write", "stat", "remove"]:
    p50 = statistics.median(s["ops"][op] for s in runs)
    ratio = statistics.median(s["ops"][op] / s["echo"] for s in runs)
    print(f"{op:<16} {p50:9.2f} {ratio:7.2f}x")
PY

log "across hosts: bridges sleeping (default) and spinning 50 us after activity, alternating"
common=(--shmarrayd "$BUNDLE/bin/shmarrayd" --ucx-perftest "$BUNDLE/bin/ucx_perftest"
  --links loopback,veth --repeat "$repeat" --repeat-large 6 --blocks 3)
timeout 240 "$HERE/ab_across_hosts.sh" "$runs" "$OUT/ab" "$BUNDLE/bin/bench_across_hosts" \
  sleep '' spin50 'SHMARRAY_BRIDGE_SPIN_US=50' -- "${common[@]}" --sizes "$sizes"
for f in "$OUT"/ab/*.log; do grep -iE 'fail|error|skip' "$f" | sed "s|^|$(basename "$f"): |" | head -5; done
if [ -n "$large" ]; then
  log "across hosts: $large"
  timeout 120 bench_across_hosts "${common[@]}" --sizes "$large" --repeat-large 4 --blocks 2 \
    --machine "$LABEL" --csv "$OUT/across_hosts.csv" 2>&1 | grep -E 'GB/s|rror|kip'
fi
cp "$OUT/ab/across_hosts.csv" "$OUT/across_hosts_ab.csv" 2>/dev/null
log done
