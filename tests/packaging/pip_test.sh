#!/usr/bin/env bash
# pip install of the Python module, as docs/python.md says, offline: a copy of the source tree in
# a temporary directory, `python3 -m venv --system-site-packages env` and
# `env/bin/pip install --no-build-isolation .`; then, from outside the source tree, the venv's
# python imports the module from the venv and uses it against a real broker.
#   pip_test.sh SOURCE_DIR BUILD_DIR      (BUILD_DIR: for its shmarrayd)
set -euo pipefail
SRC=$1
BUILD=$2
WORK=$(mktemp -d /tmp/shmarray-pip-XXXXXX)
BROKER=""
cleanup() {
  [ -n "$BROKER" ] && kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}

# The source as a user has it: tracked and new files, no build directories.
mkdir "$WORK/src"
if git -C "$SRC" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  (cd "$SRC" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 -I{} sh -c '[ -e "{}" ] && echo "{}"' | tar -cf - -T -) | tar -xf - -C "$WORK/src"
else
  (cd "$SRC" && tar -cf - --exclude='./build*' .) | tar -xf - -C "$WORK/src"
fi
/usr/bin/python3 -m venv --system-site-packages "$WORK/env"
# This test checks the packaging route (pip, setup.py, CMake, the venv), not the optimizer: the
# module is built at -O0 through $CMAKE_ARGS, the way docs/python.md names for extra arguments.
# At setup.py's Release -O3 this compile was the longest test of the suite (187 s of the normal
# CI run's 189). Faster reruns: ccache (paths relative to $WORK, which changes per run).
export CMAKE_ARGS="-DCMAKE_CXX_FLAGS_RELEASE='-O0 -DNDEBUG'"
if command -v ccache >/dev/null; then
  export CMAKE_ARGS="$CMAKE_ARGS -DCMAKE_CXX_COMPILER_LAUNCHER=ccache" CCACHE_BASEDIR=$WORK
fi
export CMAKE_BUILD_PARALLEL_LEVEL=${CMAKE_BUILD_PARALLEL_LEVEL:-2}
(cd "$WORK/src" && "$WORK/env/bin/pip" install --no-build-isolation . >"$WORK/pip.log" 2>&1) ||
  { tail -40 "$WORK/pip.log" >&2; fail "pip install --no-build-isolation . failed"; }

mkdir -m 0700 "$WORK/run"
SOCK=$WORK/run/s.sock
"$BUILD/server/shmarrayd" --socket "$SOCK" --log-level warn &
BROKER=$!
for _ in $(seq 400); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || fail "shmarrayd did not listen on $SOCK"
cd "$WORK/run"  # neither the source tree nor a build directory
"$WORK/env/bin/python" - "$SOCK" "$WORK/env" <<'PYEOF'
import sys
import numpy as np
import shmarray
sock, env = sys.argv[1], sys.argv[2]
assert shmarray.__file__.startswith(env + "/lib/"), shmarray.__file__
client = shmarray.Client(sock)
a = client.create("pip/a", (4,), "float64")
a[:] = np.arange(4)
b = client.open("pip/a")
assert np.shares_memory(a, b) or b[3] == 3.0, b
assert list(b) == [0.0, 1.0, 2.0, 3.0], b
client.remove("pip/a")
print("pip-installed shmarray", shmarray.__version__, "from", shmarray.__file__)
PYEOF
shown=$("$WORK/env/bin/pip" show shmarray 2>&1) || fail "pip show shmarray: $shown"
grep -q '^Location: '"$WORK/env/" <<<"$shown" || fail "pip show shmarray: not in the venv: $shown"
kill -TERM "$BROKER"
wait "$BROKER" || fail "shmarrayd did not exit 0"
BROKER=""
echo "pip test passed"
