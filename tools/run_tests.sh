#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every unit, integration and Python
# test with CTest (each test has a timeout), then checks that nothing leaked.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh build
before=$(ls /dev/shm | grep -c '^shmarray\.' || true)
cd build
ctest --output-on-failure --timeout 300 -j2
cd ..
# The frame/message decoders and the segment header decoders under libFuzzer + ASan/UBSan, 30 s
# each; fails on any crash.
fuzz/run_fuzz.sh 30 build/fuzz
after=$(ls /dev/shm | grep -c '^shmarray\.' || true)
if [ "$after" -gt "$before" ]; then
  echo "FAIL: the tests left $((after - before)) segment(s) in /dev/shm" >&2
  exit 1
fi
if pgrep -x shmarrayd >/dev/null; then
  echo "FAIL: a shmarrayd is still running after the tests" >&2
  exit 1
fi
