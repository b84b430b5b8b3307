#!/usr/bin/env bash
# Runs every benchmark against a broker it starts itself, prints the tables and saves raw CSV.
#   bench/run.sh [--smoke] [--build DIR] [--machine LABEL]
# --smoke: tiny sizes and counts, only to prove the benchmarks still run (the test suite uses it).
# Never fails on a number: only on a benchmark that cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
SMOKE=0
BUILD=build
MACHINE="$(nproc)-core $(uname -m), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
while (($#)); do
  case $1 in
    --smoke) SMOKE=1 ;;
    --build) BUILD=$2; shift ;;
    --machine) MACHINE=$2; shift ;;
    -h|--help) sed -n '2,6p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
[ -x "$BUILD/bench/bench_control_plane" ] || tools/setup.sh "$BUILD"

OUT=$(mktemp -d /tmp/shmarray-bench-XXXXXX)
SOCK=$OUT/s.sock
BROKER=""
cleanup() {
  [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null || true
  [ "$SMOKE" = 1 ] && rm -rf "$OUT"
  return 0
}
trap cleanup EXIT

echo "machine: $MACHINE; kernel $(uname -r); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2-)"
"$BUILD/server/shmarrayd" --socket "$SOCK" --log-level warn &
BROKER=$!
for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done

if [ "$SMOKE" = 1 ]; then CP_N=50; WAKE_N=200; else CP_N=2000; WAKE_N=20000; fi
"$BUILD/bench/bench_control_plane" --socket "$SOCK" --iterations "$CP_N" --machine "$MACHINE" \
  --csv "$OUT/control_plane.csv"
"$BUILD/bench/bench_wakeup" --rounds "$WAKE_N" --machine "$MACHINE" --csv "$OUT/wakeup.csv"
if [ -f bench/python_handoff.py ] && [ -d "$BUILD/python" ]; then
  args=(--socket "$SOCK")
  [ "$SMOKE" = 1 ] && args+=(--smoke)
  PYTHONPATH="$BUILD/python" /usr/bin/python3 bench/python_handoff.py "${args[@]}"
fi
echo "raw results: $OUT"
