#!/usr/bin/env bash
# The real install (issue 16): `apt-get install ./*.deb` on a fresh Debian 12 booted with systemd
# as PID 1, then what a user does next:
#  - shmarrayd.socket is enabled and listening, shmarrayd.service not started yet;
#  - a user in group shmarray runs `shmarray create` / `shmarray ls` with no SHMARRAY_SOCKET and no
#    SHMARRAY_BROKER_UID (the system socket fallback, docs/operations.md), which starts the broker
#    (socket activation, Type=notify: STATUS= shows the arrays);
#  - the module imports from /usr/lib/python3/dist-packages and writes the array; a program built
#    with `g++ prog.cpp $(pkg-config --cflags --libs shmarray)` reads it;
#  - a user outside group shmarray is refused with a clear message;
#  - arrays survive `systemctl restart` and a stop + socket-activated start; journald has the
#    broker's lines;
#  - a lingering user's own broker (`systemctl --user`, the user units) comes first for her, and
#    her arrays outlive the session that made them;
#  - `apt-get remove shmarrayd` stops the socket.
# The machine is a systemd-nspawn container (systemd-container) booted from a debootstrap minbase
# bookworm root (+ systemd, dbus, libpam-systemd). The root is made once and cached in
# $SHMARRAY_SYSTEMD_TEST_CACHE (default /var/cache/shmarray-systemd-test) with the .debs apt
# downloads; each run boots a throwaway copy of it (nspawn --ephemeral), so every run installs
# into a fresh system. Opt-in: runs only with SHMARRAY_SYSTEMD_INSTALL_TEST=1 (else exit 77,
# skipped); needs root, systemd-nspawn, debootstrap and the Debian mirror
# ($SHMARRAY_DEBIAN_MIRROR, default http://deb.debian.org/debian). On the 2-vCPU dev VM: about
# 3 min for debootstrap the first time, then 2-4 min per run (apt-get installs ~130 packages).
# The container shares the host's network (apt) and kernel; it gets its own /dev/shm.
#   systemd_install_test.sh SOURCE_DIR BUILD_DIR
set -euo pipefail
SRC=$(realpath "$1")
BUILD=$(realpath "$2")
if [ "${SHMARRAY_SYSTEMD_INSTALL_TEST:-}" != 1 ]; then
  echo "skipped: set SHMARRAY_SYSTEMD_INSTALL_TEST=1 to install the packages into a Debian 12" \
    "container booted with systemd (root, systemd-nspawn, debootstrap and the Debian mirror)"
  exit 77
fi
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, systemd-nspawn)"
for tool in systemd-nspawn debootstrap nsenter cpack dpkg-deb flock; do
  command -v "$tool" >/dev/null || fail "$tool is missing (apt-get install systemd-container debootstrap)"
done
CACHE=${SHMARRAY_SYSTEMD_TEST_CACHE:-/var/cache/shmarray-systemd-test}
MIRROR=${SHMARRAY_DEBIAN_MIRROR:-http://deb.debian.org/debian}
MACHINE=shmarray-install-$$
WORK=$(mktemp -d /tmp/shmarray-sdinstall-XXXXXX)
NSPAWN=""
step() { echo "=== $*"; }

cleanup() {
  if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
    kill -TERM "$NSPAWN" 2>/dev/null || true  # nspawn powers the container off
    for _ in $(seq 600); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$NSPAWN" 2>/dev/null || true
    wait "$NSPAWN" 2>/dev/null || true
  fi
  rm -rf "/run/systemd/nspawn/propagate/$MACHINE" "$WORK"
}
trap cleanup EXIT

# --- the packages
step "cpack -G DEB"
(cd "$WORK" && cpack -G DEB --config "$BUILD/CPackConfig.cmake" -B "$WORK/out" >"$WORK/cpack.log" 2>&1) ||
  { cat "$WORK/cpack.log" >&2; fail "cpack -G DEB failed"; }
mkdir "$WORK/debs"
cp "$WORK"/out/*.deb "$WORK/debs/"
ls "$WORK/debs"
[ "$(ls "$WORK/debs" | wc -l)" = 3 ] || fail "expected three packages"

# --- the cached root: debootstrap once (under a lock: parallel runs share it)
mkdir -p "$CACHE/apt-archives"
exec 9>"$CACHE/lock"
flock -w 900 9 || fail "another run holds $CACHE/lock"
ROOT=$CACHE/bookworm
if [ ! -x "$ROOT/usr/lib/systemd/systemd" ]; then
  step "debootstrap bookworm from $MIRROR into $ROOT (once)"
  rm -rf "$ROOT.new"
  debootstrap --variant=minbase --include=systemd,systemd-sysv,dbus,libpam-systemd \
    bookworm "$ROOT.new" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 ||
    { tail -n 30 "$WORK/debootstrap.log" >&2; fail "debootstrap failed"; }
  security=${MIRROR%/debian}/debian-security
  cat >"$ROOT.new/etc/apt/sources.list" <<EOF
deb $MIRROR bookworm main
deb $MIRROR bookworm-updates main
deb $security bookworm-security main
EOF
  echo shmarray-test >"$ROOT.new/etc/hostname"
  rm -rf "$ROOT"
  mv "$ROOT.new" "$ROOT"
fi
flock -u 9

# --- boot a throwaway copy of it
step "boot Debian 12 with systemd as PID 1 (systemd-nspawn --ephemeral --boot)"
systemd-nspawn --quiet -D "$ROOT" --ephemeral --boot --register=no --keep-unit \
  --machine="$MACHINE" --console=passive \
  --bind-ro="$WORK/debs:/debs" --bind="$CACHE/apt-archives:/var/cache/apt/archives" \
  >"$WORK/nspawn.log" 2>&1 &
NSPAWN=$!
LEADER=""
for _ in $(seq 600); do  # 60 s for nspawn to copy the root and start its init
  LEADER=$(ps -o pid= --ppid "$NSPAWN" 2>/dev/null | head -n 1 | tr -d ' ' || true)
  [ -n "$LEADER" ] && [ "$(cat "/proc/$LEADER/comm" 2>/dev/null)" = systemd ] && break
  kill -0 "$NSPAWN" 2>/dev/null || { cat "$WORK/nspawn.log" >&2; fail "systemd-nspawn exited"; }
  LEADER=""
  sleep 0.1
done
[ -n "$LEADER" ] || { cat "$WORK/nspawn.log" >&2; fail "no systemd in the container after 60 s"; }
# Runs a command in the container (all its namespaces and root), as root, with a clean environment.
ct() { nsenter -t "$LEADER" -a env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8 "$@"; }
# Runs a shell command as USER after a PAM login (pam_systemd: a logind session, XDG_RUNTIME_DIR).
as_user() { ct runuser -l "$1" -c "$2"; }
for _ in $(seq 600); do  # 60 s for its manager to listen (systemctl talks to /run/systemd/private)
  ct test -S /run/systemd/private 2>/dev/null && break
  sleep 0.1
done
state=$(ct timeout 120 systemctl is-system-running --wait 2>&1) || true
echo "system state: $state"
[ "$state" = running ] || { ct systemctl --failed --no-pager || true; fail "boot ended '$state'"; }

# --- apt-get install ./*.deb
step "apt-get install ./*.deb"
ct sh -c 'apt-get update -q >/dev/null && cd /debs &&
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q ./*.deb' >"$WORK/apt.log" 2>&1 ||
  { tail -n 40 "$WORK/apt.log" >&2; fail "apt-get install ./*.deb failed"; }
grep -E '^(Setting up|Unpacking) (shmarrayd|libshmarray-dev|python3-shmarray)' "$WORK/apt.log" || true
grep -E 'newly installed' "$WORK/apt.log" || true

step "systemctl status shmarrayd.socket"
ct systemctl status --no-pager shmarrayd.socket | sed 's/^/  /' || true
[ "$(ct systemctl is-enabled shmarrayd.socket)" = enabled ] || fail "shmarrayd.socket is not enabled"
[ "$(ct systemctl is-active shmarrayd.socket)" = active ] || fail "shmarrayd.socket is not listening"
[ "$(ct systemctl is-active shmarrayd.service || true)" = inactive ] ||
  fail "shmarrayd.service runs before any connection (socket activation expected)"
ct test -S /run/shmarray/shmarray.sock || fail "no socket at /run/shmarray/shmarray.sock"
ct stat -c '  %n %U:%G %a' /run/shmarray /run/shmarray/shmarray.sock

# --- a user in group shmarray, with a real login session
ct useradd -m -G shmarray alice
ct useradd -m bob
step "alice (group shmarray, logged in): shmarray create / ls with no SHMARRAY_SOCKET"
as_user alice 'echo "  XDG_RUNTIME_DIR=$XDG_RUNTIME_DIR SHMARRAY_SOCKET=${SHMARRAY_SOCKET-unset}"'
out=$(as_user alice 'shmarray create demo/frame --dtype "<f8" --shape 4 --mode 0644') ||
  fail "alice: shmarray create: $out"
echo "  $out"
out=$(as_user alice 'shmarray ls') || fail "alice: shmarray ls: $out"
echo "$out" | sed 's/^/  /'
grep -q 'demo/frame' <<<"$out" || fail "shmarray ls lacks demo/frame"
[ "$(ct systemctl is-active shmarrayd.service)" = active ] ||
  fail "the first connection did not start shmarrayd.service"
for _ in $(seq 100); do  # the broker refreshes STATUS= every 2 s: allow 20 s
  status=$(ct systemctl show -p StatusText --value shmarrayd.service)
  grep -q '1 arrays' <<<"$status" && break
  sleep 0.2
done
echo "  StatusText: $status"
grep -q '1 arrays' <<<"$status" || fail "STATUS= does not count the array: '$status'"

step "alice: python3 -c 'import shmarray' (the packaged module)"
as_user alice "python3 -c 'import shmarray, numpy
print(\"  module:\", shmarray.__file__)
c = shmarray.Client()
a = c.open(\"demo/frame\", writable=True)
a[:] = numpy.arange(4) * 1.5
shmarray.publish(a)
print(\"  wrote\", a.tolist(), \"via\", shmarray.default_socket_path())'" || fail "python"

step "alice: g++ prog.cpp \$(pkg-config --cflags --libs shmarray)"
ct install -o alice -m 0644 /dev/stdin /home/alice/prog.cpp <<'CPP'
#include <shmarray/shmarray.hpp>

#include <cstdio>

int main() {
  auto client = shmarray::Client::connect({});
  if (!client) return std::fprintf(stderr, "%s\n", client.error().message().c_str()), 1;
  auto a = client->open("demo/frame", shmarray::Access::kReadOnly);
  if (!a) return std::fprintf(stderr, "%s\n", a.error().message().c_str()), 1;
  auto values = a->as<const double>();
  if (!values) return std::fprintf(stderr, "%s\n", values.error().message().c_str()), 1;
  std::printf("%g\n", (*values)[3]);
  return 0;
}
CPP
as_user alice 'echo "  pkg-config: $(pkg-config --cflags --libs shmarray)"; g++ -Werror prog.cpp -o prog $(pkg-config --cflags --libs shmarray)' ||
  fail "the pkg-config program does not compile"
out=$(as_user alice './prog') || fail "prog: $out"
echo "  prog read $out"
[ "$out" = 4.5 ] || fail "prog read '$out', not the 4.5 Python wrote"

step "bob (not in group shmarray) is refused"
if out=$(as_user bob 'shmarray ls' 2>&1); then fail "bob listed the arrays: $out"; fi
echo "  $out"
grep -q 'not allowed to connect to the broker at /run/shmarray/shmarray.sock' <<<"$out" ||
  fail "bob's error does not say why: $out"

step "arrays survive systemctl restart, and a stop + socket-activated start"
ct systemctl restart shmarrayd.service
as_user alice 'shmarray ls' | grep -q 'demo/frame' || fail "demo/frame gone after restart"
ct systemctl stop shmarrayd.service 2>/dev/null  # "can still be activated by shmarrayd.socket"
[ "$(ct systemctl is-active shmarrayd.socket)" = active ] || fail "the socket stopped with the service"
out=$(as_user alice 'shmarray dump demo/frame') || fail "dump after stop: $out"
echo "$out" | sed 's/^/  /'
grep -q '4.5' <<<"$out" || fail "demo/frame lost its values across the stop"
[ "$(ct systemctl is-active shmarrayd.service)" = active ] || fail "no socket-activated start"

step "journalctl -u shmarrayd.service"
ct journalctl -u shmarrayd.service --no-pager -o cat | sed 's/^/  /' | tail -n 12
ct journalctl -u shmarrayd.service --no-pager -o cat | grep -q "create 'demo/frame'" ||
  fail "the journal lacks the create line"

step "alice's own broker (systemctl --user, lingering): her socket comes first"
ct loginctl enable-linger alice  # her user manager runs, and logind's RemoveIPC= spares her arrays
alice_uid=$(ct id -u alice)
for _ in $(seq 300); do  # 30 s for her user manager to listen
  ct test -S "/run/user/$alice_uid/systemd/private" 2>/dev/null && break
  sleep 0.1
done
as_user alice 'systemctl --user enable --now shmarrayd.socket' 2>&1 | sed 's/^/  /' ||
  fail "systemctl --user enable --now shmarrayd.socket"
as_user alice 'shmarray create mine/x --dtype "<f4" --shape 2' >/dev/null || fail "create in her broker"
# a new session: the array outlived the one that made it (linger: no RemoveIPC at logout)
out=$(as_user alice 'shmarray ls -1; echo "--"; shmarray --socket /run/shmarray/shmarray.sock ls -1') ||
  fail "ls: $out"
echo "$out" | sed 's/^/  /'
[ "$out" = "$(printf 'mine/x\n--\ndemo/frame')" ] ||
  fail "her own broker should serve mine/x and the system broker demo/frame"
[ "$(as_user alice 'systemctl --user is-active shmarrayd.service')" = active ] ||
  fail "her shmarrayd.service did not start on the first connection"
as_user alice 'shmarray rm mine/x && systemctl --user disable --now shmarrayd.socket shmarrayd.service' \
  >/dev/null 2>&1 || fail "rm mine/x, systemctl --user disable"

step "apt-get remove shmarrayd"
as_user alice 'shmarray rm demo/frame' >/dev/null || fail "rm demo/frame"
ct sh -c 'DEBIAN_FRONTEND=noninteractive apt-get remove -y -q shmarrayd' >"$WORK/remove.log" 2>&1 ||
  { tail -n 20 "$WORK/remove.log" >&2; fail "apt-get remove shmarrayd"; }
[ "$(ct systemctl is-active shmarrayd.socket || true)" = inactive ] || fail "the socket outlived the package"
echo "systemd install test passed"
