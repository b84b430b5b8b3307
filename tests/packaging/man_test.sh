#!/usr/bin/env bash
# The man pages (help2man runs --help at build time) state the socket rules, never the build
# machine's paths: --help of both programs is the same whatever $XDG_RUNTIME_DIR, $SHMARRAY_SOCKET
# and the uid, and the generated shmarray.1 and shmarrayd.8 name the rules and no /run/user/<uid>.
#   man_test.sh BUILD_DIR SHMARRAY SHMARRAYD
set -euo pipefail
BUILD=$1
declare -A BIN=([shmarray]=$2 [shmarrayd]=$3)
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
for program in shmarray shmarrayd; do
  bin=${BIN[$program]}
  plain=$(env -u XDG_RUNTIME_DIR -u SHMARRAY_SOCKET "$bin" --help)
  set_up=$(XDG_RUNTIME_DIR=/run/user/4242 SHMARRAY_SOCKET=/srv/x.sock SHMARRAY_SYSTEM_SOCKET=/srv/y.sock "$bin" --help)
  [ "$plain" = "$set_up" ] || fail "$program --help depends on the environment: $(diff <(echo "$plain") <(echo "$set_up"))"
  grep -q 'XDG_RUNTIME_DIR/shmarray.sock' <<<"$plain" || fail "$program --help does not state the rule"
done
sub=$(XDG_RUNTIME_DIR=/run/user/4242 "${BIN[shmarray]}" ls --help)
grep -q '/run/shmarray/shmarray.sock' <<<"$sub" || fail "shmarray ls --help does not name the system socket"
! grep -q 4242 <<<"$sub" || fail "shmarray ls --help shows \$XDG_RUNTIME_DIR's value"

MAN=$BUILD/packaging/man
for page in shmarray.1 shmarrayd.8; do
  [ -f "$MAN/$page.gz" ] || fail "no $MAN/$page.gz (help2man missing?)"
  text=$(zcat "$MAN/$page.gz" | sed 's/\\-/-/g' | tr '\n' ' ')
  grep -q 'XDG_RUNTIME_DIR/shmarray.sock' <<<"$text" || fail "$page does not state the socket rule"
  ! grep -Eq '/run/user/[0-9]|/tmp/shmarray-[0-9]' <<<"$text" || fail "$page shows a machine's socket path"
done
text=$(zcat "$MAN/shmarray.1.gz" | sed 's/\\-/-/g' | tr '\n' ' ')
grep -q '/run/shmarray/shmarray.sock if that exists' <<<"$text" || fail "shmarray.1 lacks the system broker fallback"
echo "man pages state the rules"
