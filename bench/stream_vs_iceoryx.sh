#!/usr/bin/env bash
# Large messages, stream against iceoryx (docs/benchmarks.md "7. Streams"): the section-1 handoff
# driver (consumer asleep between messages, read all) for the shmarray stream and for iceoryx,
# alternated RUNS times in one run, then bench_stream_latency's hot rounds of the same sizes for
# the stream, the bare spin (the handoff floor: bytes another core wrote, read all) and the
# local read (the read loop over a buffer its own core wrote: the memory-bandwidth floor).
#   bench/stream_vs_iceoryx.sh RUNS OUT_DIR BUILD_DIR [SIZES]      (SIZES default 1MiB,64MiB)
# BEFORE=DIR (a directory holding an older bench_handoff): its stream rounds alternate too,
# labelled "<machine>, before".
# Needs iox-roudi (Debian: iceoryx) and takes bench/run.sh's iceoryx lock; run as root for nice.
set -euo pipefail
RUNS=$1
OUT=$2
B=$3/bench
SIZES=${4:-1MiB,64MiB}
mkdir -p "$OUT"
NICE=()
[ "$(id -u)" -eq 0 ] && NICE=(nice -n -15)
TMP=$(mktemp -d /tmp/shmarray-iox-XXXXXX)
exec 9>/tmp/shmarray-bench-iceoryx.lock
flock -w 120 9 || { echo "another benchmark run holds the iceoryx lock" >&2; exit 1; }
python3 "$(dirname "$0")"/roudi_config.py "$SIZES" > "$TMP/roudi.toml"
iox-roudi -c "$TMP/roudi.toml" -l info > "$TMP/roudi.log" 2>&1 &
ROUDI=$!
"$3/server/shmarrayd" --socket "$TMP/s.sock" --log-level warn &
BROKER=$!
cleanup() {
  kill "$BROKER" "$ROUDI" 2>/dev/null || true
  wait "$BROKER" "$ROUDI" 2>/dev/null || true
  rm -f "/dev/shm/iceoryx_mgmt" "/dev/shm/$(id -un)"
  rm -rf "$TMP"
}
trap cleanup EXIT
for _ in $(seq 600); do grep -q "RouDi is ready" "$TMP/roudi.log" && [ -S "$TMP/s.sock" ] && break; sleep 0.1; done
grep -q "RouDi is ready" "$TMP/roudi.log" || { cat "$TMP/roudi.log" >&2; exit 1; }
M=(--machine "${MACHINE:-this machine}")
for r in $(seq 1 "$RUNS"); do
  "${NICE[@]}" "$B/bench_handoff" --socket "$TMP/s.sock" --sizes "$SIZES" --uses read_all \
    --methods "shmarray stream" --repeat 20 --repeat-large 9 "${M[@]}" --csv "$OUT/handoff.csv" \
    > "$OUT/handoff.$r.log"
  if [ -n "${BEFORE:-}" ]; then
    "${NICE[@]}" "$BEFORE/bench_handoff" --socket "$TMP/s.sock" --sizes "$SIZES" --uses read_all \
      --methods "shmarray stream" --repeat 20 --repeat-large 9 \
      --machine "${MACHINE:-this machine}, before" --csv "$OUT/handoff_before.csv" \
      > "$OUT/handoff_before.$r.log"
  fi
  "${NICE[@]}" "$B/bench_iceoryx_handoff" --sizes "$SIZES" --repeat 20 --repeat-large 9 "${M[@]}" \
    --csv "$OUT/iceoryx_handoff.csv" > "$OUT/iceoryx.$r.log"
done
"${NICE[@]}" "$B/bench_stream_latency" --socket "$TMP/s.sock" --sizes "$SIZES" --modes hot \
  --methods "stream,bare spin,local read" --rounds 2000 --rounds-large 20 "${M[@]}" \
  --csv "$OUT/stream_large.csv" | tee "$OUT/stream_large.log"
python3 - "$OUT"/handoff*.csv "$OUT/iceoryx_handoff.csv" <<'PY'
import collections, csv, statistics, sys
rows = collections.defaultdict(list)
for f in sys.argv[1:]:
    for row in csv.DictReader(open(f)):
        if row["use"] == "read_all":
            rows[(int(row["bytes"]), row["machine"].endswith(", before"), row["method"])].append(
                float(row["us"]))
for (size, before, method), us in sorted(rows.items()):
    p50 = statistics.median(us)
    label = method + (" (before)" if before else "")
    print(f"{size:>10} {label:<54} n={len(us):3d} p50 {p50:10.1f} us  {size / p50 / 1e3:6.2f} GB/s")
PY
