#!/usr/bin/env bash
# User-space instructions per request, broker and client side (docs/benchmarks.md, "Request
# path"), counted by callgrind: this VM has no hardware counters (`perf stat -e instructions:u`
# says "not supported"), and an instruction count, unlike a time, does not depend on the load.
#   bench/count_request_path.sh SHMARRAYD BENCH_REQUEST_COUNT [COUNT]
# For each operation: a broker under callgrind, `bench_request_count --op prepare` (not counted)
# making what the operation needs, then the operation COUNT times (default 300) in a client under
# callgrind. Broker per op = (broker's main thread with the COUNT operations - the same run with
# 0 operations) / COUNT; client per op = the client's dump around its COUNT operations / COUNT.
# The broker's other threads (the segment pool's, off the request path) are not counted.
set -euo pipefail
broker=$1
driver=$2
count=${3:-300}
out=$(mktemp -d /tmp/shmarray-count-XXXXXX)
trap 'rm -rf "$out"' EXIT

total() {  # the Ir total of a callgrind output file
  awk '/^(totals|summary):/ {print $2; exit}' "$1"
}

# Removes the segments of the (stopped) broker on socket $1: the arrays were never removed, and
# only their names' prefix (socket_path.cpp, segment_prefix) says which files are this run's.
remove_segments() {
  local tag
  tag=$(python3 -c 'import sys
h = 2166136261
for c in sys.argv[1].encode(): h = ((h ^ c) * 16777619) & 0xffffffff
print(f"{h:08x}")' "$1")
  rm -f /dev/shm/shmarray."$(id -u)"."$tag".*
}

# broker_ir OP N: the broker main thread's instructions for a run with N operations OP.
broker_ir() {
  local op=$1 n=$2 dir
  dir=$(mktemp -d "$out/run-XXXXXX")
  valgrind --tool=callgrind --separate-threads=yes --callgrind-out-file="$dir/broker.%p" \
    "$broker" --socket "$dir/s.sock" --log-level warn 2>"$dir/broker.log" &
  local pid=$!
  # Ready when it accepts a connection (the socket file exists from bind, before listen); this
  # connection is in both runs, so it cancels out.
  local ready=0
  for _ in $(seq 1 600); do
    if "$driver" --socket "$dir/s.sock" --op prepare --count 0 2>/dev/null; then ready=1; break; fi
    sleep 0.05
  done
  [ "$ready" = 1 ] || { echo "shmarrayd did not start (see $dir/broker.log)" >&2; exit 1; }
  if [ "$op" != create ]; then "$driver" --socket "$dir/s.sock" --op prepare --count "$count"; fi
  valgrind --tool=callgrind --callgrind-out-file="$dir/client.%p" \
    "$driver" --socket "$dir/s.sock" --op "$op" --count "$n" 2>"$dir/client.log"
  kill -TERM "$pid"
  wait "$pid" || true
  remove_segments "$dir/s.sock"
  if [ "$n" -gt 0 ]; then total "$(ls "$dir"/client.*.1 | head -1)" >"$out/client_ir"; fi
  total "$(ls "$dir"/broker.*-01 | head -1)"
}

printf '%-16s %14s %14s\n' operation "broker Ir/op" "client Ir/op"
for op in create open-ro open-rw stat remove; do
  with=$(broker_ir "$op" "$count")
  c=$(cat "$out/client_ir")
  without=$(broker_ir "$op" 0)
  printf '%-16s %14d %14d\n' "$op" $(((with - without) / count)) $((c / count))
done
dir=$(mktemp -d "$out/echo-XXXXXX")
valgrind --tool=callgrind --callgrind-out-file="$dir/echo.%p" "$driver" --op echo --count "$count" \
  2>"$dir/echo.log"
client=$(total "$(ls "$dir"/echo.*.1 | head -1)")
printf '%-16s %14s %14d\n' "64 B echo" "-" $((client / count))
