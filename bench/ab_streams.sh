#!/usr/bin/env bash
# Before/after comparison of the stream hot path on one machine, in one run (docs/benchmarks.md,
# "7. Streams"): variants alternate RUNS times, each run a fresh broker on a temporary socket and
# `bench_stream_latency --modes hot --methods "stream,bare spin"` (pinned: publisher on core 0,
# the subscriber on core 1); prints, per variant and size, the median over runs of the stream's
# p50 and p99 and of its ratio to the bare spin of the same run.
#   bench/ab_streams.sh RUNS OUT_DIR LABEL SHMARRAYD BENCH_STREAM_LATENCY [LABEL SHMARRAYD BENCH ...]
# e.g. bench/ab_streams.sh 10 /tmp/ab before build-old/shmarrayd build-old/bench_stream_latency \
#        after build/server/shmarrayd build/bench/bench_stream_latency
# SIZES (default 64,4KiB), ROUNDS (default 5000) per run. Run as root to get nice -15 (pinned
# processes cannot move away from other work on their core: they need the priority).
set -euo pipefail
. "$(dirname "$0")"/ab_args.sh
ab_parse_args "$0 RUNS OUT_DIR LABEL SHMARRAYD BENCH ..." "$@"
NICE=()
[ "$(id -u)" -eq 0 ] && NICE=(nice -n -15)
for r in $(seq 1 "$RUNS"); do
  for v in "${variants[@]}"; do
    IFS='|' read -r label broker bench <<<"$v"
    dir=$(mktemp -d /tmp/shmarray-ab-XXXXXX)
    "$broker" --socket "$dir/s.sock" --log-level warn &
    pid=$!
    for _ in $(seq 1 200); do [ -S "$dir/s.sock" ] && break; sleep 0.05; done
    [ -S "$dir/s.sock" ] || { echo "$label: shmarrayd did not start" >&2; kill "$pid"; exit 1; }
    "${NICE[@]}" "$bench" --socket "$dir/s.sock" --sizes "${SIZES:-64,4KiB}" --modes hot \
      --rounds "${ROUNDS:-5000}" --methods "stream,bare spin" --machine "$label" \
      --csv "$OUT/stream_runs.csv" >"$OUT/$label.$r.log" 2>&1 ||
      echo "$label run $r: bench_stream_latency failed (see $OUT/$label.$r.log)" >&2
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
  done
done
python3 - "$OUT/stream_runs.csv" <<'PY'
import collections, csv, statistics, sys
runs = collections.defaultdict(list)  # (variant, bytes) -> [{method: row}]
for row in csv.DictReader(open(sys.argv[1])):
    if row["subscribers"] != "1":
        continue
    key = (row["machine"], int(row["bytes"]))
    if row["method"] == "bare spin":
        runs[key].append({})
    runs[key][-1][row["method"]] = row
print(f"{'variant':<10} {'bytes':>7} {'runs':>4} {'stream p50':>10} {'p99':>7} {'spin p50':>8} {'x spin':>7}")
for (label, size), samples in runs.items():
    samples = [s for s in samples if "stream" in s and "bare spin" in s]
    p50 = statistics.median(float(s["stream"]["p50_us"]) for s in samples)
    p99 = statistics.median(float(s["stream"]["p99_us"]) for s in samples)
    spin = statistics.median(float(s["bare spin"]["p50_us"]) for s in samples)
    ratio = statistics.median(float(s["stream"]["p50_us"]) / float(s["bare spin"]["p50_us"])
                              for s in samples)
    print(f"{label:<10} {size:>7} {len(samples):>4} {p50:10.3f} {p99:7.3f} {spin:8.3f} {ratio:6.2f}x")
PY
