#!/usr/bin/env bash
# cmake --install into a temporary prefix, build examples/external_project against it with
# find_package(shmarray), and run it as the consumer of the demo producer on a real broker.
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
cmake -S "$SRC/examples/external_project" -B "$WORK/ext" -G Ninja \
  -DCMAKE_PREFIX_PATH="$WORK/prefix" >/dev/null
cmake --build "$WORK/ext" >/dev/null
SOCK=$WORK/s.sock
"$WORK/prefix/bin/shmarrayd" --socket "$SOCK" --log-level warn &
BROKER=$!
for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
timeout 60 "$WORK/ext/external_consumer" "$SOCK" &
CONSUMER=$!
timeout 60 "$BUILD/examples/producer" --socket "$SOCK"
wait "$CONSUMER"
kill -TERM "$BROKER"
wait "$BROKER"
BROKER=""
echo "install test passed: an outside project found the package and shared the demo's array"
