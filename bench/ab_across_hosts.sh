#!/usr/bin/env bash
# Before/after comparison of the mirror path across hosts (docs/benchmarks.md, "Across hosts"):
# variants alternate RUNS times, each run one bench_across_hosts (its own brokers, TCP copy and
# mirror in the same run); prints, per variant, link and size, the median over runs of the
# mirror's p50 and of its ratio to the same run's TCP copy.
#   bench/ab_across_hosts.sh RUNS OUT_DIR BENCH_ACROSS_HOSTS LABEL 'ENV' [LABEL 'ENV']... -- ARGS
# ENV: NAME=value words for that variant (e.g. SHMARRAY_BRIDGE=/tmp/old/shmarray-bridge to run an
# older bridge under the same shmarrayd, or UCX_TCP_TX_SEG_SIZE=64K), '' for none. ARGS go to
# every bench_across_hosts run (e.g. --links veth --sizes 4KiB,1MiB --repeat 20
# --ucx-perftest none). Give the binaries as absolute paths: host B runs in its own namespaces.
# With --paced-hz N in ARGS, also the median over runs of the paced latency and of the bridges'
# CPU (from the runs' logs).
# e.g. bench/ab_across_hosts.sh 3 /tmp/ab build/bench/bench_across_hosts \
#   old SHMARRAY_BRIDGE=/tmp/old-bridge new '' -- --links veth --sizes 4KiB,64MiB
set -euo pipefail
RUNS=$1
OUT=$2
BENCH=$3
shift 3
variants=()
while [ $# -ge 2 ] && [ "$1" != "--" ]; do
  variants+=("$1|$2")
  shift 2
done
[ "${1:-}" = "--" ] && shift
[ ${#variants[@]} -gt 0 ] || { echo "usage: $0 RUNS OUT BENCH LABEL ENV ... -- ARGS" >&2; exit 2; }
mkdir -p "$OUT"
for r in $(seq 1 "$RUNS"); do
  for v in "${variants[@]}"; do
    IFS='|' read -r label envs <<<"$v"
    # shellcheck disable=SC2086  # the variant's NAME=value words are split on purpose
    env $envs "$BENCH" --machine "$label" --csv "$OUT/across_hosts.csv" "$@" \
      >"$OUT/$label.$r.log" 2>&1 || echo "$label run $r failed (see $OUT/$label.$r.log)" >&2
  done
done
python3 - "$OUT/across_hosts.csv" <<'PY'
import collections, csv, statistics, sys
runs = collections.defaultdict(list)
for row in csv.DictReader(open(sys.argv[1])):
    runs[(row["link"], int(row["size"]), row["method"], row["machine"])].append(row)
print(f"{'link':<9} {'size':>11} {'method':<13} {'variant':<16} {'runs':>4} {'p50 us':>10} "
      f"{'x tcp':>7}")
for (link, size, method, label), rows in sorted(runs.items()):
    p50 = statistics.median(float(r["p50_us"]) for r in rows)
    ratios = [float(r["ratio_to_tcp_p50"]) for r in rows if r["ratio_to_tcp_p50"] != "nan"]
    ratio = f"{statistics.median(ratios):.2f}x" if ratios else "-"
    print(f"{link:<9} {size:>11} {method:<13} {label:<16} {len(rows):>4} {p50:10.1f} {ratio:>7}")
PY
python3 - "$OUT" <<'PY'
import collections, pathlib, re, statistics, sys
line = re.compile(r"^(\S+)\s+paced (\d+)/s.*p50\s+([\d.]+) us"
                  r".*CPU\s+([\d.]+)% of a core,\s+([\d.]+) us")
runs = collections.defaultdict(list)
for log in sorted(pathlib.Path(sys.argv[1]).glob("*.log")):
    label = log.name.rsplit(".", 2)[0]
    for text in log.read_text(errors="replace").splitlines():
        if m := line.match(text):
            runs[(m[1], int(m[2]), label)].append((float(m[3]), float(m[4]), float(m[5])))
if runs:
    print(f"\n{'link':<9} {'paced':>8} {'variant':<16} {'runs':>4} {'p50 us':>10} "
          f"{'bridges CPU %':>14} {'CPU us/version':>15}")
for (link, hz, label), rows in sorted(runs.items()):
    med = [statistics.median(r[i] for r in rows) for i in range(3)]
    print(f"{link:<9} {hz:>6}/s {label:<16} {len(rows):>4} {med[0]:10.1f} {med[1]:14.1f} "
          f"{med[2]:15.1f}")
PY
