#!/usr/bin/env bash
# Builds the libFuzzer target fuzz_decoders (frame + message decoders, with ASan and UBSan) and
# runs it for SECONDS (default 60) from the seed corpus fuzz/corpus/. Exits non-zero on any crash,
# sanitizer report, leak or timeout (libFuzzer then leaves crash-*/leak-*/timeout-* in WORK_DIR).
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

SOURCES=(common/src/error.cpp common/src/dtype.cpp common/src/types.cpp common/src/frame.cpp
  common/src/messages.cpp)
# libstdc++ 12 hides std::expected unless __cpp_concepts says C++20 concepts are complete; clang
# 16 implements what <expected> needs but still reports the older value.
FLAGS=(-std=c++2b -g -O1 -fno-omit-frame-pointer -Icommon/include -I"$WORK/generated"
  -Wno-builtin-macro-redefined -U__cpp_concepts -D__cpp_concepts=202002L)
SAN=(-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined)

BIN="$WORK/fuzz_decoders"
newest_source=$(ls -t fuzz/fuzz_decoders.cpp "${SOURCES[@]}" common/include/shmarray/*.hpp \
  common/include/shmarray/wire/*.hpp "$WORK/generated/shmarray_generated.h" | head -1)
if [ ! -x "$BIN" ] || [ "$newest_source" -nt "$BIN" ]; then
  echo "==> building $BIN with $CXX"
  "$CXX" "${FLAGS[@]}" "${SAN[@]}" fuzz/fuzz_decoders.cpp "${SOURCES[@]}" -o "$BIN"
fi

# libFuzzer adds what it finds to the first corpus directory: a copy, so fuzz/corpus stays as
# checked in.
mkdir -p "$WORK/corpus"
cp -n fuzz/corpus/* "$WORK/corpus/" 2>/dev/null || true
echo "==> fuzzing for ${SECONDS_TO_RUN}s"
cd "$WORK"
exec "$BIN" -max_total_time="$SECONDS_TO_RUN" -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 -artifact_prefix="$WORK/" "$WORK/corpus"
