#!/usr/bin/env bash
# cmake --install into a temporary prefix, then, against it:
#  1. a project made of exactly the README's C++ quick start (main.cpp) and CMake lines
#     (CMakeLists.txt, no CMAKE_CXX_STANDARD: the targets must bring C++23) builds with -Werror
#     (an ignored [[nodiscard]] result fails) and runs against a real broker;
#  2. examples/external_project builds with find_package(shmarray) and runs as the consumer of
#     the demo producer.
#   install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$1
BUILD=$2
WORK=$(mktemp -d /tmp/shmarray-install-XXXXXX)
BROKER=""
cleanup() {
  [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
cmake --install "$BUILD" --prefix "$WORK/prefix" >/dev/null
test -x "$WORK/prefix/bin/shmarrayd"
test -f "$WORK/prefix/include/shmarray/shmarray.hpp"
# README.md's "C++ quick start": its cpp block and its cmake block, verbatim.
section() { sed -n '/^## C++ quick start/,/^## /p' "$SRC/README.md"; }
block() { section | awk -v lang="$1" '$0 == "```" lang {on = 1; next} on && /^```/ {exit} on'; }
mkdir -p "$WORK/readme"
block cpp >"$WORK/readme/main.cpp"
block cmake >"$WORK/readme/CMakeLists.txt"
grep -q 'find_package(shmarray CONFIG REQUIRED)' "$WORK/readme/CMakeLists.txt"
grep -q 'int main' "$WORK/readme/main.cpp"
if grep -q CMAKE_CXX_STANDARD "$WORK/readme/CMakeLists.txt"; then
  echo "FAIL: the README's CMake lines set CMAKE_CXX_STANDARD themselves" >&2
  exit 1
fi
cmake -S "$WORK/readme" -B "$WORK/readme/build" -G Ninja -DCMAKE_PREFIX_PATH="$WORK/prefix" \
  -DCMAKE_CXX_FLAGS="-Werror" >/dev/null
cmake --build "$WORK/readme/build" >/dev/null
cmake -S "$SRC/examples/external_project" -B "$WORK/ext" -G Ninja \
  -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null
cmake --build "$WORK/ext" >/dev/null
SOCK=$WORK/s.sock
"$WORK/prefix/bin/shmarrayd" --socket "$SOCK" --log-level warn &
BROKER=$!
for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
# The quick start reads back what it wrote and removes its array, so it runs twice in a row.
for run in 1 2; do
  out=$(SHMARRAY_SOCKET=$SOCK timeout 60 "$WORK/readme/build/app")
  if [ "$out" != "cam/0 version 1: 1" ]; then
    echo "FAIL: README quick start run $run printed '$out'" >&2
    exit 1
  fi
done
timeout 60 "$WORK/ext/external_consumer" "$SOCK" &
CONSUMER=$!
timeout 60 "$BUILD/examples/producer" --socket "$SOCK"
wait "$CONSUMER"
kill -TERM "$BROKER"
wait "$BROKER"
BROKER=""
echo "install test passed: the README's quick start and an outside project built against the package and ran"
