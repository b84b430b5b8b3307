#!/usr/bin/env bash
# Packs the benchmark programs of a build into one folder that runs on another x86-64 Linux machine
# without this project's Debian packages (docs/benchmarks.md, "Runs on other machines"): the
# binaries stripped, every shared library they need except glibc's own, UCX's transport modules,
# and the tools the two-hosts harness runs (ip, ucx_perftest), with env.sh to source there.
#   bench/bundle.sh BUILD_DIR OUT_DIR
# e.g. bench/bundle.sh build /tmp/bundle; then on the other machine, as root:
#   . /tmp/bundle/env.sh && bench_across_hosts --shmarrayd "$SHMARRAY_BUNDLE/bin/shmarrayd" ...
# env.sh puts bin/ first on PATH and lib/ on LD_LIBRARY_PATH, and copies ip and ucx_perftest to
# /usr/sbin and /usr/bin where the machine has none (the harness looks for them there).
set -euo pipefail
BUILD=$(cd "$1" && pwd)
OUT=$2
mkdir -p "$OUT/bin" "$OUT/lib/ucx"
programs=(server/shmarrayd server/shmarray-bridge tools/shmarray bench/bench_control_plane
  bench/bench_across_hosts bench/bench_probe bench/bench_stream_latency bench/bench_handoff)
extras=(/usr/bin/ucx_perftest)
for tool in ip nsenter unshare stdbuf; do
  for dir in /usr/sbin /usr/bin /sbin /bin; do
    if [ -x "$dir/$tool" ]; then extras+=("$dir/$tool"); break; fi
  done
done
for p in "${programs[@]}"; do
  [ -x "$BUILD/$p" ] || { echo "bundle: $BUILD/$p is not built" >&2; exit 1; }
  cp "$BUILD/$p" "$OUT/bin/"
done
for e in "${extras[@]}"; do [ -x "$e" ] && cp "$e" "$OUT/bin/"; done
strip --strip-debug "$OUT"/bin/* 2>/dev/null || true
# UCX loads its transport modules from <libucs's folder>/ucx: the shared-memory (cma) one suffices
# for these benchmarks (tcp is built into libuct).
ucx_modules=/usr/lib/x86_64-linux-gnu/ucx
[ -e "$ucx_modules/libuct_cma.so.0" ] && cp -L "$ucx_modules/libuct_cma.so.0" "$OUT/lib/ucx/"
# Every library the programs and the module need, but glibc's (the other machine's own is used:
# a newer glibc runs these binaries, a copied older one would not run with its loader).
for f in "$OUT"/bin/* "$OUT"/lib/ucx/*; do
  ldd "$f" 2>/dev/null | awk '$3 ~ /^\// {print $3}'
done | sort -u | while read -r lib; do
  case "$(basename "$lib")" in
    libc.so.*|libm.so.*|libpthread.so.*|libdl.so.*|librt.so.*|ld-linux*|libresolv.so.*) ;;
    *) cp -L "$lib" "$OUT/lib/" ;;
  esac
done
cat >"$OUT/env.sh" <<'ENV'
# Sourced on the machine that runs the bundle (bench/bundle.sh).
SHMARRAY_BUNDLE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export SHMARRAY_BUNDLE
export PATH="$SHMARRAY_BUNDLE/bin:$PATH"
export LD_LIBRARY_PATH="$SHMARRAY_BUNDLE/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
export SHMARRAY_BRIDGE="$SHMARRAY_BUNDLE/bin/shmarray-bridge"
for t in ip:/usr/sbin nsenter:/usr/bin unshare:/usr/bin stdbuf:/usr/bin ucx_perftest:/usr/bin; do
  name=${t%%:*}
  dir=${t#*:}
  found=
  for d in /usr/sbin /usr/bin /sbin /bin; do [ -x "$d/$name" ] && found=1; done
  if [ -z "$found" ] && [ -x "$SHMARRAY_BUNDLE/bin/$name" ]; then
    cp "$SHMARRAY_BUNDLE/bin/$name" "$dir/$name" 2>/dev/null ||
      echo "env.sh: cannot put $name in $dir (not root?)" >&2
  fi
done
ENV
du -sh "$OUT"
