#!/usr/bin/env bash
# Before/after comparison of the control plane on one machine, in one run (docs/benchmarks.md,
# "Request path"): variants alternate RUNS times, each run a fresh broker on a temporary socket and
# `bench_control_plane --clients 1`; prints, per variant, the median over runs of each operation's
# p50 and of its ratio to the 64-byte echo of the same run.
#   bench/ab_control_plane.sh RUNS OUT_DIR LABEL "SHMARRAYD [ARGS]" BENCH_CONTROL_PLANE [LABEL ...]
# e.g. the segment pool on and off, same binaries:
#   bench/ab_control_plane.sh 7 /tmp/ab off "build/server/shmarrayd --segment-pool-bytes 0" \
#     build/bench/bench_control_plane on build/server/shmarrayd build/bench/bench_control_plane
# ITERATIONS (default 2000) operations per phase.
set -euo pipefail
. "$(dirname "$0")"/ab_args.sh
ab_parse_args "$0 RUNS OUT_DIR LABEL 'SHMARRAYD ARGS' BENCH ..." "$@"
for r in $(seq 1 "$RUNS"); do
  for v in "${variants[@]}"; do
    IFS='|' read -r label broker bench <<<"$v"
    dir=$(mktemp -d /tmp/shmarray-ab-XXXXXX)
    # shellcheck disable=SC2086  # the broker's arguments are split on purpose
    $broker --socket "$dir/s.sock" --log-level warn &
    pid=$!
    for _ in $(seq 1 200); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
    [ -S "$dir/s.sock" ] || { echo "$label: shmarrayd did not start" >&2; kill "$pid"; exit 1; }
    "$bench" --socket "$dir/s.sock" --clients 1 --iterations "${ITERATIONS:-2000}" \
      --machine "$label" --csv "$OUT/control_plane.csv" >"$OUT/$label.$r.log" 2>&1 ||
      echo "$label run $r: bench_control_plane failed (see $OUT/$label.$r.log)" >&2
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
python3 "$(dirname "$0")/control_plane_ab_summary.py" "$OUT/control_plane.csv"
