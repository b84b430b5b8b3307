#!/usr/bin/env bash
# Builds the libFuzzer targets (with ASan and UBSan) and runs each for SECONDS (default 60):
#   fuzz_decoders  frame + message decoders, seeds fuzz/corpus/
#   fuzz_header    segment header page + size decoders, client and broker side, and the broker's
#                  catalogue slot decoder, seeds fuzz/corpus_header/
#   fuzz_dtype     dtype text decoder (structured layouts, limits), seeds fuzz/corpus_dtype/
#   fuzz_peer      peer-link messages between bridges (mirrors across hosts), seeds
#                  fuzz/corpus_peer/
# Exits non-zero on any crash, sanitizer report, leak or timeout (libFuzzer then leaves
# <target>-crash-*/-leak-*/-timeout-* in WORK_DIR, and the end of WORK_DIR/<target>.log is printed).
#   fuzz/run_fuzz.sh [SECONDS] [WORK_DIR]        (default WORK_DIR: build/fuzz)
# Compiles with $FUZZ_JOBS jobs and runs $FUZZ_JOBS fuzzers at once, each on its own core for
# SECONDS (default: the number of CPUs).
# Compiler: $FUZZ_CXX, else the newest clang++-N (N >= 16) found. clang 14/15 cannot compile
# libstdc++ 12's std::expected (they lack P0848, conditionally trivial special members); Debian
# bookworm's clang-16 + libclang-rt-16-dev can (tools/setup.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
SECONDS_TO_RUN=${1:-60}
WORK=${2:-build/fuzz}
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd)

CXX=${FUZZ_CXX:-}
if [ -z "$CXX" ]; then
  for v in 20 19 18 17 16; do
    if command -v "clang++-$v" >/dev/null; then CXX="clang++-$v"; break; fi
  done
fi
if [ -z "$CXX" ]; then
  echo "run_fuzz.sh: no clang++ >= 16 found: install clang-16 libclang-rt-16-dev" >&2
  exit 2
fi

# The wire schema's generated header, made here so no main build is needed.
mkdir -p "$WORK/generated"
if [ ! -f "$WORK/generated/shmarray_generated.h" ] ||
   [ common/schema/shmarray.fbs -nt "$WORK/generated/shmarray_generated.h" ]; then
  flatc --cpp -o "$WORK/generated" common/schema/shmarray.fbs
fi

SOURCES=(common/src/error.cpp common/src/dtype.cpp common/src/dtype_parse.cpp common/src/types.cpp
  common/src/frame.cpp common/src/messages.cpp)
DTYPE_SOURCES=(common/src/error.cpp common/src/dtype.cpp common/src/dtype_parse.cpp)
PEER_SOURCES=(common/src/error.cpp common/src/dtype.cpp common/src/dtype_parse.cpp common/src/types.cpp
  common/src/stream_types.cpp
  server/src/bridge/peer_messages.cpp)
# The header target needs the segment layout (and the live fields it initialises) and the
# broker's catalogue and recovery decision.
HEADER_SOURCES=(common/src/error.cpp common/src/dtype.cpp common/src/dtype_parse.cpp common/src/types.cpp
  common/src/segment_layout.cpp common/src/stream/stream_layout.cpp common/src/stream_types.cpp
  common/src/unique_fd.cpp
  common/src/sync/*.cpp
  server/src/catalogue.cpp server/src/catalogue_record.cpp server/src/segment_check.cpp)
# libstdc++ 12 hides std::expected unless __cpp_concepts says C++20 concepts are complete; clang
# 16 implements what <expected> needs but still reports the older value.
FLAGS=(-std=c++2b -g -O1 -fno-omit-frame-pointer -Icommon/include -Icommon/private -Icommon/src/sync
  -Iserver/src -I"$WORK/generated" -Wno-builtin-macro-redefined -U__cpp_concepts
  -D__cpp_concepts=202002L)
SAN=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)

JOBS=${FUZZ_JOBS:-$(nproc)}
HEADERS=(common/include/shmarray/*.hpp common/private/shmarray/*.hpp common/private/shmarray/wire/*.hpp
  common/private/shmarray/sync/*.hpp server/src/*.hpp server/src/bridge/*.hpp
  "$WORK/generated/shmarray_generated.h")
NEWEST_HEADER=$(ls -t "${HEADERS[@]}" | head -1)

# Runs "$@" in the background, at most $JOBS at once; pool_wait waits for all of them. A failed job
# fails the pool (POOL_FAILED).
POOL_RUNNING=0
POOL_FAILED=0
pool_reap() {  # waits for one job
  wait -n || POOL_FAILED=1
  POOL_RUNNING=$((POOL_RUNNING - 1))
}
pool_run() {
  [ "$POOL_RUNNING" -lt "$JOBS" ] || pool_reap
  "$@" &
  POOL_RUNNING=$((POOL_RUNNING + 1))
}
pool_wait() {
  while [ "$POOL_RUNNING" -gt 0 ]; do pool_reap; done
}

# object SOURCE: the object file of SOURCE, shared by every target that needs it.
object() {
  local name=${1//\//_}
  echo "$WORK/obj/${name%.cpp}.o"
}
compile() {
  local source=$1 obj
  obj=$(object "$source")
  "$CXX" "${FLAGS[@]}" "${SAN[@]}" -c "$source" -o "$obj.tmp" && mv "$obj.tmp" "$obj"
}

# Each source is compiled once (sources shared by the targets too), $JOBS at a time, when it or
# any header is newer than its object; each target is relinked when one of its objects is newer.
TARGETS=(fuzz_decoders fuzz_header fuzz_dtype fuzz_peer)
declare -A TARGET_SOURCES=(
  [fuzz_decoders]="fuzz/fuzz_decoders.cpp ${SOURCES[*]}"
  [fuzz_header]="fuzz/fuzz_header.cpp ${HEADER_SOURCES[*]}"
  [fuzz_dtype]="fuzz/fuzz_dtype.cpp ${DTYPE_SOURCES[*]}"
  [fuzz_peer]="fuzz/fuzz_peer.cpp ${PEER_SOURCES[*]}")
mkdir -p "$WORK/obj"
declare -A SEEN=()
for target in "${TARGETS[@]}"; do
  for source in ${TARGET_SOURCES[$target]}; do
    [ -n "${SEEN[$source]:-}" ] && continue
    SEEN[$source]=1
    obj=$(object "$source")
    if [ ! -f "$obj" ] || [ "$source" -nt "$obj" ] || [ "$NEWEST_HEADER" -nt "$obj" ]; then
      echo "==> compiling $source with $CXX"
      pool_run compile "$source"
    fi
  done
done
pool_wait
[ "$POOL_FAILED" = 0 ] || { echo "run_fuzz.sh: compiling failed (above)" >&2; exit 1; }
for target in "${TARGETS[@]}"; do
  objects=()
  for source in ${TARGET_SOURCES[$target]}; do objects+=("$(object "$source")"); done
  newest=$(ls -t "${objects[@]}" | head -1)
  if [ ! -x "$WORK/$target" ] || [ "$newest" -nt "$WORK/$target" ]; then
    echo "==> linking $WORK/$target"
    "$CXX" "${SAN[@]}" "${objects[@]}" -o "$WORK/$target"
  fi
done

# fuzz TARGET SEEDS: runs $WORK/TARGET for SECONDS_TO_RUN on a copy of SEEDS (libFuzzer adds
# what it finds to the first corpus directory, so fuzz/ stays as checked in), into
# $WORK/TARGET.log; on failure prints the end of that log.
fuzz() {
  local target=$1 seeds=$2
  mkdir -p "$WORK/$target.corpus"
  cp -n "$seeds"/* "$WORK/$target.corpus/" 2>/dev/null || true
  if (cd "$WORK" && "$WORK/$target" -max_total_time="$SECONDS_TO_RUN" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$WORK/$target-" \
    "$WORK/$target.corpus") >"$WORK/$target.log" 2>&1; then
    echo "==> $target: $(grep -E '^(Done|stat::number_of_executed_units)' "$WORK/$target.log" | head -1)"
  else
    echo "==> FAIL: $target (the end of $WORK/$target.log):" >&2
    tail -60 "$WORK/$target.log" >&2
    return 1
  fi
}

# $JOBS fuzzers at once, each on its own core for SECONDS_TO_RUN.
echo "==> fuzzing ${TARGETS[*]} for ${SECONDS_TO_RUN}s each, $JOBS at once (logs: $WORK/*.log)"
pool_run fuzz fuzz_decoders fuzz/corpus
pool_run fuzz fuzz_header fuzz/corpus_header
pool_run fuzz fuzz_dtype fuzz/corpus_dtype
pool_run fuzz fuzz_peer fuzz/corpus_peer
pool_wait
[ "$POOL_FAILED" = 0 ] || { echo "run_fuzz.sh: a fuzzer found a problem (above)" >&2; exit 1; }
