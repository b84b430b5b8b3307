#!/usr/bin/env bash
# The whole test suite: installs what is missing, builds, runs every unit, integration and Python
# test with CTest (each test has a timeout), then checks that nothing leaked.
set -euo pipefail
cd "$(dirname "$0")/.."
# -g1 (line tables only) instead of RelWithDebInfo's -g: backtraces and sanitizer reports keep
# file:line, and compiling takes about 30% less CPU (measured: 11.0 -> 7.3 s for
# reliability_test.cpp, 12.1 -> 9.1 s for array_handlers.cpp), which is minutes of a 2-core CI run.
# The test sources themselves (not the product, not the helpers) build at -O1 here: see
# SHMARRAY_TEST_CODE_FLAGS in tests/CMakeLists.txt.
LINE_TABLES=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O2 -g1 -DNDEBUG")
START=$SECONDS
phase() { printf '==> [%dm%02ds] %s\n' $(((SECONDS - START) / 60)) $(((SECONDS - START) % 60)) "$*"; }
phase "installing what is missing, configuring and building build/"
tools/setup.sh build "${LINE_TABLES[@]}" -DSHMARRAY_TEST_CODE_FLAGS=-O1
phase "running the tests in build/"
before=$(ls /dev/shm | grep -c '^shmarray\.' || true)
cd build
ctest --output-on-failure --timeout 300 -j2
cd ..
# The unit and integration suites again under AddressSanitizer + UndefinedBehaviorSanitizer, in
# their own build directory: every process they start (broker, helpers, CLI) is sanitized, and any
# report fails its test. Python is not rebuilt here (it would need a sanitized interpreter).
# At -O0: at -O2 this build took most of the CI's time (a test file: 129 s at -O2, 72 s at -O1,
# 22 s at -O0; broker.cpp: 56, 36 and 22 s), and the build above already tests the optimised
# code. ASan finds the same errors at -O0; only the programs run slower.
phase "configuring and building build-asan (ASan + UBSan)"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHMARRAY_ASAN=ON \
  -DSHMARRAY_BUILD_PYTHON=OFF -DPython3_EXECUTABLE=/usr/bin/python3 \
  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O0 -g1 -DNDEBUG" >/dev/null
cmake --build build-asan -j"$(nproc)" --target shmarray_unit_tests shmarray_interposer_tests \
  shmarray_integration_tests shmarray_zero_copy_test shmarray_stream_tests shmarrayd \
  shmarray_test_helper shmarray_stream_helper shmarray shmarray_two_hosts_tests \
  shmarray_across_hosts_tests shmarray_mirror_helper shmarray_mirror_tests shmarray-bridge
phase "running the unit and integration tests in build-asan"
(cd build-asan && ctest --output-on-failure --timeout 300 -j2 -L 'unit|integration' \
  -E '^(install_and_find_package|debian_packages|man_pages)$')
# The frame/message decoders, the segment header decoders and the dtype decoder under libFuzzer +
# ASan/UBSan, 30 s each; fails on any crash.
phase "building and running the fuzzers"
fuzz/run_fuzz.sh 30 build/fuzz
phase "checking that nothing was left behind"
after=$(ls /dev/shm | grep -c '^shmarray\.' || true)
if [ "$after" -gt "$before" ]; then
  echo "FAIL: the tests left $((after - before)) segment(s) in /dev/shm" >&2
  exit 1
fi
if ls /run/netns 2>/dev/null | grep -q '^shmarray-h'; then
  echo "FAIL: the two-hosts tests left network namespaces: $(ls /run/netns | grep '^shmarray-h' | tr '\n' ' ')" >&2
  exit 1
fi
if pgrep -x shmarrayd >/dev/null; then
  echo "FAIL: a shmarrayd is still running after the tests" >&2
  exit 1
fi
phase "all tests passed"
