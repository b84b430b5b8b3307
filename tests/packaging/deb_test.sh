#!/usr/bin/env bash
# The Debian packages: `cpack -G DEB` from BUILD_DIR makes shmarrayd, libshmarray-dev and
# python3-shmarray; each is checked for its files and Depends, then all three are extracted with
# dpkg-deb -x (nothing installed on this host) and used from there: the extracted broker and CLI
# serve and list an array, the extracted module imports (from outside the source tree) and sees
# it, and a program compiled with `pkg-config --cflags --libs shmarray` against the extracted
# headers and libraries creates and reads one.
#   deb_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$1
BUILD=$2
WORK=$(mktemp -d /tmp/shmarray-deb-XXXXXX)
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

(cd "$WORK" && cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/out" >"$WORK/cpack.log" 2>&1) ||
  { cat "$WORK/cpack.log" >&2; fail "cpack -G DEB failed"; }
ARCH=$(dpkg --print-architecture)
VERSION=$(sed -n 's/^project(shmarray VERSION \([0-9.]*\).*/\1/p' "$SRC/CMakeLists.txt")
DAEMON=$WORK/out/shmarrayd_${VERSION}_${ARCH}.deb
DEV=$WORK/out/libshmarray-dev_${VERSION}_${ARCH}.deb
PY=$WORK/out/python3-shmarray_${VERSION}_${ARCH}.deb
for deb in "$DAEMON" "$DEV" "$PY"; do
  [ -f "$deb" ] || fail "cpack made no $(basename "$deb") (made: $(ls "$WORK/out"))"
done

# --- Depends
depends() { dpkg-deb -f "$1" Depends; }
expect_depends() {  # DEB REGEX...
  local deb=$1 d
  shift
  d=$(depends "$deb")
  for re in "$@"; do
    grep -Eq "$re" <<<"$d" || fail "$(basename "$deb") Depends '$d' lacks /$re/"
  done
}
expect_depends "$DAEMON" 'libc6 \(>=' 'libstdc\+\+6 \(>=' 'libspdlog' 'libucx0' 'libsodium23'  # UCX, libsodium: shmarray-bridge
expect_depends "$DEV" 'libstdc\+\+-12-dev'
PYVER=$(/usr/bin/python3 -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
expect_depends "$PY" "python3 \\(>= $PYVER\\)" 'python3 \(<< ' 'python3-numpy' 'libstdc\+\+6'
[ "$(dpkg-deb -f "$DAEMON" Package)" = shmarrayd ] || fail "package name"
dpkg-deb -I "$DAEMON" postinst >/dev/null || fail "shmarrayd has no postinst"
dpkg-deb -I "$DAEMON" postinst | sh -n || fail "postinst is not valid sh"

# --- files
files() { dpkg-deb -c "$1" | awk '{print $6}' | sed 's|^\./|/|'; }
expect_files() {  # DEB PATH...
  local deb=$1 list
  shift
  list=$(files "$deb")
  for f in "$@"; do grep -qx "$f" <<<"$list" || fail "$(basename "$deb") lacks $f"; done
}
expect_files "$DAEMON" /usr/bin/shmarrayd /usr/bin/shmarray /usr/bin/shmarray-bridge \
  /usr/lib/systemd/system/shmarrayd.service /usr/lib/systemd/system/shmarrayd.socket \
  /usr/lib/systemd/user/shmarrayd.service /usr/lib/systemd/user/shmarrayd.socket \
  /usr/lib/sysusers.d/shmarray.conf /usr/lib/tmpfiles.d/shmarray.conf \
  /usr/share/man/man8/shmarrayd.8.gz /usr/share/man/man1/shmarray.1.gz
expect_files "$DEV" /usr/include/shmarray/shmarray.hpp /usr/lib/libshmarray_client.a \
  /usr/lib/libshmarray_common.a /usr/lib/cmake/shmarray/shmarrayConfig.cmake \
  /usr/lib/pkgconfig/shmarray.pc
files "$PY" | grep -Eq '^/usr/lib/python3/dist-packages/shmarray\.cpython-[0-9]+-.*\.so$' ||
  fail "python3-shmarray has no module in /usr/lib/python3/dist-packages: $(files "$PY")"
# Nothing of one package in another (dpkg would refuse to install them together).
dup=$(for deb in "$DAEMON" "$DEV" "$PY"; do files "$deb" | grep -v '/$'; done | sort | uniq -d)
[ -z "$dup" ] || fail "files in two packages: $dup"

# --- extract all three and use them
ROOT=$WORK/root
for deb in "$DAEMON" "$DEV" "$PY"; do dpkg-deb -x "$deb" "$ROOT"; done
grep -qx 'ExecStart=/usr/bin/shmarrayd --socket /run/shmarray/shmarray.sock --socket-mode 0660 --socket-group shmarray' \
  "$ROOT/usr/lib/systemd/system/shmarrayd.service" || fail "system unit ExecStart"
grep -qx 'Type=notify' "$ROOT/usr/lib/systemd/system/shmarrayd.service" || fail "Type=notify"
# The units as systemd reads them (unknown keys, bad values): no word from systemd-analyze. Their
# ExecStart= points into the extracted tree, since verify checks that the program exists.
if command -v systemd-analyze >/dev/null; then
  for kind in system user; do
    mkdir -p "$WORK/units/$kind"
    sed "s|=/usr/bin/shmarrayd|=$ROOT/usr/bin/shmarrayd|" "$ROOT/usr/lib/systemd/$kind/shmarrayd.service" \
      >"$WORK/units/$kind/shmarrayd.service"
    cp "$ROOT/usr/lib/systemd/$kind/shmarrayd.socket" "$WORK/units/$kind/"
    scope=(); [ "$kind" = user ] && scope=(--user)
    said=$(XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$WORK} timeout 60 systemd-analyze "${scope[@]}" verify \
      --man=no "$WORK/units/$kind/shmarrayd.socket" "$WORK/units/$kind/shmarrayd.service" 2>&1) ||
      fail "systemd-analyze verify ($kind units): $said"
    [ -z "$said" ] || fail "systemd-analyze verify ($kind units) says: $said"
  done
fi
# The user and socket directory the postinst makes, made in a scratch root: a system user (so
# logind's RemoveIPC= spares its segments, docs/operations.md) owning /run/shmarray, 0755.
if command -v systemd-sysusers >/dev/null && command -v systemd-tmpfiles >/dev/null; then
  SYSROOT=$WORK/sysroot
  mkdir -p "$SYSROOT/etc"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$SYSROOT/etc/passwd"
  echo 'root:x:0:' >"$SYSROOT/etc/group"
  systemd-sysusers --root="$SYSROOT" "$ROOT/usr/lib/sysusers.d/shmarray.conf" >/dev/null 2>&1 ||
    fail "systemd-sysusers rejects shmarray.conf"
  uid=$(awk -F: '$1 == "shmarray" {print $3}' "$SYSROOT/etc/passwd")
  gid=$(awk -F: '$1 == "shmarray" {print $3}' "$SYSROOT/etc/group")
  [ -n "$uid" ] && [ "$uid" -lt 1000 ] || fail "sysusers made no system user shmarray (uid '$uid')"
  [ -n "$gid" ] || fail "sysusers made no group shmarray"
  systemd-tmpfiles --root="$SYSROOT" --create "$ROOT/usr/lib/tmpfiles.d/shmarray.conf" >/dev/null 2>&1 ||
    fail "systemd-tmpfiles rejects shmarray.conf"
  [ "$(stat -c '%u:%g %a' "$SYSROOT/run/shmarray")" = "$uid:$gid 755" ] ||
    fail "/run/shmarray is $(stat -c '%u:%g %a' "$SYSROOT/run/shmarray"), not $uid:$gid 755"
fi
zcat "$ROOT/usr/share/man/man8/shmarrayd.8.gz" | grep -qF 'socket\-mode' || fail "shmarrayd.8 lacks the options"
zcat "$ROOT/usr/share/man/man1/shmarray.1.gz" | grep -q '^\.TH SHMARRAY "1"' || fail "shmarray.1 header"
grep -q '^prefix=/usr$' "$ROOT/usr/lib/pkgconfig/shmarray.pc" || fail "shmarray.pc prefix"

mkdir -m 0700 "$WORK/run"
SOCK=$WORK/run/s.sock
"$ROOT/usr/bin/shmarrayd" --socket "$SOCK" --log-level warn &
BROKER=$!
for _ in $(seq 400); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || fail "the extracted shmarrayd did not listen on $SOCK"
"$ROOT/usr/bin/shmarray" --version >/dev/null 2>&1 || true  # not required here
"$ROOT/usr/bin/shmarray" create deb/a --dtype '<f8' --shape 3 --socket "$SOCK" >/dev/null
"$ROOT/usr/bin/shmarray" ls --socket "$SOCK" | grep -q 'deb/a' || fail "extracted CLI: ls lacks deb/a"

cd "$WORK"  # away from the source tree: the import must come from the extracted package
PYTHONPATH=$ROOT/usr/lib/python3/dist-packages /usr/bin/python3 - "$SOCK" "$ROOT" <<'PYEOF'
import sys
import shmarray
sock, root = sys.argv[1], sys.argv[2]
assert shmarray.__file__.startswith(root + "/usr/lib/python3/dist-packages/"), shmarray.__file__
client = shmarray.Client(sock)
names = [info.name for info in client.list()]
assert "deb/a" in names, names
a = client.open("deb/a", writable=True)
a[:] = [1.5, 2.5, 3.5]
PYEOF

cat >"$WORK/prog.cpp" <<'CPP'
#include <shmarray/shmarray.hpp>

#include <cstdio>

int main(int argc, char** argv) {
  auto client = shmarray::Client::connect({.socket_path = argc > 1 ? argv[1] : ""});
  if (!client) return std::fprintf(stderr, "%s\n", client.error().message().c_str()), 1;
  auto a = client->open("deb/a", shmarray::Access::kReadOnly);
  if (!a) return std::fprintf(stderr, "%s\n", a.error().message().c_str()), 1;
  std::printf("%g\n", (*a->as<const double>())[2]);
  return client->remove("deb/a") ? 0 : 1;
}
CPP
flags=$(PKG_CONFIG_SYSROOT_DIR=$ROOT PKG_CONFIG_LIBDIR=$ROOT/usr/lib/pkgconfig \
  pkg-config --cflags --libs shmarray)
# shellcheck disable=SC2086
g++ -Werror "$WORK/prog.cpp" -o "$WORK/prog" $flags || fail "g++ prog.cpp $flags"
out=$("$WORK/prog" "$SOCK")
[ "$out" = 3.5 ] || fail "the pkg-config program read '$out', not the 3.5 Python wrote"

kill -TERM "$BROKER"
wait "$BROKER" || fail "the extracted broker did not exit 0 on SIGTERM"
BROKER=""
echo "deb test passed: $(cd "$WORK/out" && ls ./*.deb | tr '\n' ' ')"
