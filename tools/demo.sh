#!/usr/bin/env bash
# The main demo: a broker, a C++ producer and a consumer sharing one 1024x1024 float64 array.
# The producer fills it, the consumer doubles it in place, the producer sees the doubled values.
# Then the same round trip with the Python consumer (C++ -> Python -> C++).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh build
B=build
DIR=$(mktemp -d /tmp/shmarray-demo-XXXXXX)
SOCK=$DIR/shmarray.sock
cleanup() {
  [ -n "${BROKER:-}" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null || true
  rm -rf "$DIR"
}
trap cleanup EXIT

echo "==> starting the broker: $B/server/shmarrayd --socket $SOCK"
"$B/server/shmarrayd" --socket "$SOCK" &
BROKER=$!
for _ in $(seq 100); do [ -S "$SOCK" ] && break; sleep 0.05; done

echo "==> C++ producer + C++ consumer"
"$B/examples/consumer" --socket "$SOCK" &
CONSUMER=$!
"$B/examples/producer" --socket "$SOCK"
wait "$CONSUMER"

if [ -f examples/python/consumer.py ] && [ -d "$B/python" ]; then
  echo "==> C++ producer + Python consumer (NumPy view of the same pages)"
  PYTHONPATH="$B/python" /usr/bin/python3 examples/python/consumer.py --socket "$SOCK" &
  CONSUMER=$!
  "$B/examples/producer" --socket "$SOCK"
  wait "$CONSUMER"
fi
echo "==> demo done: each consumer saw the producer's values, and the producer saw the consumer's writes"
