#!/usr/bin/env bash
# Builds the libFuzzer targets (with ASan and UBSan) and runs each for SECONDS (default 60):
#   fuzz_decoders  frame + message decoders, seeds fuzz/corpus/
#   fuzz_header    segment header page + size decoders, client and broker side, and the broker's
#                  catalogue slot decoder, seeds fuzz/corpus_header/
#   fuzz_dtype     dtype text decoder (structured layouts, limits), seeds fuzz/corpus_dtype/
#   fuzz_peer      peer-link messages between bridges (mirrors across hosts), seeds
#                  fuzz/corpus_peer/
# Exits non-zero on any crash, sanitizer report, leak or timeout (libFuzzer then leaves
# crash-*/leak-*/timeout-* in WORK_DIR/<target>).
#   fuzz/run_fuzz.sh [SECONDS] [WORK_DIR]        (default WORK_DIR: build/fuzz)
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

# build TARGET SOURCES...: (re)builds $WORK/TARGET from fuzz/TARGET.cpp when a source is newer.
build() {
  local target=$1
  shift
  local bin="$WORK/$target"
  local newest_source
  newest_source=$(ls -t "fuzz/$target.cpp" "$@" common/include/shmarray/*.hpp \
    common/private/shmarray/*.hpp common/private/shmarray/wire/*.hpp \
    common/private/shmarray/sync/*.hpp server/src/*.hpp \
    "$WORK/generated/shmarray_generated.h" | head -1)
  if [ ! -x "$bin" ] || [ "$newest_source" -nt "$bin" ]; then
    echo "==> building $bin with $CXX"
    "$CXX" "${FLAGS[@]}" "${SAN[@]}" "fuzz/$target.cpp" "$@" -o "$bin"
  fi
}

# fuzz TARGET SEEDS: runs $WORK/TARGET for SECONDS_TO_RUN on a copy of SEEDS (libFuzzer adds
# what it finds to the first corpus directory, so fuzz/ stays as checked in).
fuzz() {
  local target=$1 seeds=$2
  mkdir -p "$WORK/$target.corpus"
  cp -n "$seeds"/* "$WORK/$target.corpus/" 2>/dev/null || true
  echo "==> fuzzing $target for ${SECONDS_TO_RUN}s"
  (cd "$WORK" && "$WORK/$target" -max_total_time="$SECONDS_TO_RUN" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$WORK/$target-" \
    "$WORK/$target.corpus")
}

build fuzz_decoders "${SOURCES[@]}"
build fuzz_header "${HEADER_SOURCES[@]}"
build fuzz_dtype "${DTYPE_SOURCES[@]}"
build fuzz_peer "${PEER_SOURCES[@]}"
fuzz fuzz_decoders fuzz/corpus
fuzz fuzz_header fuzz/corpus_header
fuzz fuzz_dtype fuzz/corpus_dtype
fuzz fuzz_peer fuzz/corpus_peer
