#!/usr/bin/env bash
# Runs every benchmark, saves raw CSV and regenerates docs/benchmarks.md and docs/img/*.png.
#   bench/run.sh [--smoke] [--build DIR] [--machine LABEL] [--out DIR] [--only STAGES] [--no-install] [--hosts-1gib]
# --smoke      tiny sizes and counts, only to prove every benchmark still runs (ctest bench_smoke);
#              writes to a temporary directory and touches nothing under docs/
# --machine    label for every table (default: "<cores>-core <arch>, <memory>")
# --out DIR    where the CSVs go (default: docs/bench-results/<label as a file name>); docs/benchmarks.md
#              then shows every result set under docs/bench-results/ (and DIR) side by side
# --only LIST  comma-separated subset of: probe,control,scale,list,wakeup,lock,handoff,memory,python,frames,iceoryx,stream,hosts
# --hosts-1gib the across-hosts stage also moves 1 GiB (needs ~5 GiB of free memory)
# Installs what it needs (python3-matplotlib, iceoryx, libiceoryx-posh-dev) unless --smoke or
# --no-install. Never fails on a number: only on a benchmark that cannot run.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$PWD
SMOKE=0
BUILD=build
OUT=""
ONLY="probe,control,scale,list,wakeup,lock,handoff,memory,python,frames,iceoryx,stream,hosts"  # = ALL_STAGES below
HOSTS_1GIB=0
INSTALL=1
CORES=$(nproc)
MACHINE="$CORES-core $(uname -m), $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)"
while (($#)); do
  case $1 in
    --smoke) SMOKE=1 ;;
    --build) BUILD=$2; shift ;;
    --machine) MACHINE=$2; shift ;;
    --out) OUT=$2; shift ;;
    --only) ONLY=$2; shift ;;
    --no-install) INSTALL=0 ;;
    --hosts-1gib) HOSTS_1GIB=1 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
  shift
done
BUILD=$(realpath -m "$BUILD")
# Other work on a shared machine (compilers, tests) otherwise decides how fast a woken consumer
# gets a CPU. Every method runs at the same priority, so no ratio is bent; on an idle machine this
# changes nothing. Needs root or CAP_SYS_NICE; without it the run goes on at normal priority.
PRIORITY="normal"
renice -n -10 -p $$ >/dev/null 2>&1 && PRIORITY="nice -10 (renice by bench/run.sh)"
wants() { [[ ",$ONLY," == *",$1,"* ]]; }
T_START=$(date +%s)
stage() { echo; echo "==> [$(( $(date +%s) - T_START )) s] $*"; }

# --- what it needs ----------------------------------------------------------------------------------
if [ "$SMOKE" = 0 ] && [ "$INSTALL" = 1 ]; then
  missing=()
  for p in python3-matplotlib python3-numpy iceoryx libiceoryx-posh-dev; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    stage "installing ${missing[*]}"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq \
        "${missing[@]}" >/dev/null; } || echo "warning: could not install ${missing[*]}; going on without"
  fi
fi
BENCH_TARGETS=(shmarrayd shmarray bench_control_plane bench_wakeup bench_write_lock bench_list_interference bench_handoff bench_memory bench_probe bench_stream_latency bench_across_hosts shmarray-bridge)
if [ ! -f "$BUILD/CMakeCache.txt" ]; then
  tools/setup.sh "$BUILD"
elif [ "$SMOKE" = 0 ]; then
  stage "building (reconfiguring so that an iceoryx installed just now is found)"
  cmake -S . -B "$BUILD" >/dev/null
  extra=()
  grep -q 'shmarray_python' "$BUILD/build.ninja" 2>/dev/null && extra+=(shmarray_python)
  grep -q 'bench_iceoryx_handoff' "$BUILD/build.ninja" 2>/dev/null && extra+=(bench_iceoryx_handoff bench_iceoryx_wakeup)
  cmake --build "$BUILD" --target "${BENCH_TARGETS[@]}" "${extra[@]}"
else
  for t in bench/bench_control_plane bench/bench_handoff bench/bench_memory bench/bench_probe bench/bench_write_lock bench/bench_list_interference bench/bench_stream_latency bench/bench_across_hosts; do
    [ -x "$BUILD/$t" ] || { cmake --build "$BUILD" --target "${BENCH_TARGETS[@]}"; break; }
  done
fi

# --- where results go -------------------------------------------------------------------------------
TMP=$(mktemp -d /tmp/shmarray-bench-XXXXXX)
if [ "$SMOKE" = 1 ]; then
  OUT=${OUT:-$TMP/results}
elif [ -z "$OUT" ]; then
  OUT=docs/bench-results/$(echo "$MACHINE" | tr 'A-Z' 'a-z' | tr -cs 'a-z0-9' '-' | sed 's/^-//; s/-$//')
fi
mkdir -p "$OUT"
OUT=$(realpath "$OUT")
for s in ${ONLY//,/ }; do
  case $s in
    control) rm -f "$OUT/control_plane.csv" ;;
    handoff) rm -f "$OUT/handoff.csv" ;;
    wakeup) rm -f "$OUT/wakeup.csv" ;;
    lock) rm -f "$OUT/write_lock.csv" ;;
    list) rm -f "$OUT/list_interference.csv" ;;
    python) rm -f "$OUT"/python_handoff*.csv ;;
    iceoryx) rm -f "$OUT/iceoryx_handoff.csv" "$OUT/iceoryx_wakeup.csv" "$OUT/iceoryx_status.txt" ;;
    *) rm -f "$OUT/$s.csv" ;;
  esac
done

SOCK=$TMP/s.sock
BROKER=""
ROUDI=""
stop_broker() {
  if [ -n "$BROKER" ]; then
    # Remove anything a benchmark left behind, so no segment outlives the run.
    left=$("$BUILD/tools/shmarray" --socket "$SOCK" ls --json 2>/dev/null |
      python3 -c 'import json,sys; print(" ".join(a["name"] for a in json.load(sys.stdin)))' 2>/dev/null || true)
    if [ -n "$left" ]; then
      echo "warning: removing arrays left behind: $(echo $left | wc -w)" >&2
      echo $left | xargs -n 500 "$BUILD/tools/shmarray" --socket "$SOCK" rm >/dev/null || true
    fi
    kill "$BROKER" 2>/dev/null && wait "$BROKER" 2>/dev/null || true
    BROKER=""
  fi
}
stop_roudi() {
  if [ -n "$ROUDI" ]; then
    kill "$ROUDI" 2>/dev/null || true
    for _ in $(seq 600); do kill -0 "$ROUDI" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$ROUDI" 2>/dev/null || true
    wait "$ROUDI" 2>/dev/null || true
    ROUDI=""
    # Only ours: we held the lock and started this RouDi. The apps' sockets are named after them.
    rm -f "/dev/shm/iceoryx_mgmt" "/dev/shm/$(id -un)" /tmp/shmarray-iox-*
  fi
}
cleanup() {
  stop_broker
  stop_roudi
  rm -rf "$TMP"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- machine facts ----------------------------------------------------------------------------------
CPU=$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//')
MEM=$(awk '/MemTotal/ {printf "%.1f GiB", $2/1048576}' /proc/meminfo)
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
echo "machine: $MACHINE"
echo "  cpu: $CPU; $CORES cores; memory $MEM; kernel $(uname -r); /dev/shm $(df -h /dev/shm | awk 'NR==2 {print $2}')"
echo "  load average at start: $LOAD0"
awk -v c="$CORES" '{ if ($1 > c) print "  warning: load average " $1 " > " c " cores: numbers will be noisy" }' /proc/loadavg
ALL_STAGES="probe,control,scale,list,wakeup,lock,handoff,memory,python,frames,iceoryx,stream,hosts"
if [ "$ONLY" != "$ALL_STAGES" ] && [ -f "$OUT/meta.csv" ]; then
  # A partial rerun: the set keeps its machine facts; the rerun is noted beside them.
  META=$TMP/meta.csv  # this run's own facts go to a scratch file
  echo "rerun,\"$ONLY at $(date -u +%Y-%m-%dT%H:%MZ), load $LOAD0\"" >> "$OUT/meta.csv"
else
  META=$OUT/meta.csv
fi
{
  echo "key,value"
  echo "machine,\"$MACHINE\""
  echo "cpu,\"$CPU\""
  echo "cores,$CORES"
  echo "memory,$MEM"
  echo "kernel,$(uname -r)"
  echo "date,$(date -u +%Y-%m-%dT%H:%MZ)"
  echo "commit,$(git rev-parse --short HEAD 2>/dev/null || echo unknown)"
  echo "load_start,\"$LOAD0\""
  echo "smoke,$SMOKE"
  # A DAMON scheme clears page-table accessed bits in the background: on a shadow-paging VM that
  # makes later first accesses exit to the hypervisor again. Recorded, never changed.
  damon=off
  for k in /sys/kernel/mm/damon/admin/kdamonds/*/; do
    [ "$(cat "$k/state" 2>/dev/null)" = on ] &&
      damon="on ($(cat "$k"/contexts/0/operations 2>/dev/null), $(cat "$k"/contexts/0/schemes/*/action 2>/dev/null | tr '\n' ' ' | sed 's/ $//'))"
  done
  echo "damon,\"$damon\""
  # virtio-balloon free page reporting (feature bit 5): freed guest memory goes back to the host
  # about 2 s after the free, and the next use of it faults on the host again.
  reporting=no
  for d in /sys/bus/virtio/devices/*; do
    [ "$(cat "$d/device" 2>/dev/null)" = 0x0005 ] && [ "$(cut -c6 "$d/features" 2>/dev/null)" = 1 ] && reporting=yes
  done
  echo "balloon_reporting,$reporting"
  echo "priority,\"$PRIORITY\""
} > "$META"

# Client counts: powers of two up to 4 x cores (1,2,4,8 on 2 cores; 1..64 on 16).
COUNTS=1; c=1; while ((c * 2 <= 4 * CORES)); do c=$((c * 2)); COUNTS+=",$c"; done
if [ "$SMOKE" = 1 ]; then
  PROBE_MIB=8; CP_N=40; COUNTS=1,2; REG=1,10,100; PROBES=10; SIZES_SCALE=4KiB,1MiB; REPS=2
  LIST_ARGS=(--arrays 1500 --probes 50); WAKE_N=200; LOCK_ARGS=(--n 20000 --contended 2000 --rounds 200 --deaths 1); HO_SIZES=4KiB,64KiB; HO_ARGS=(--repeat 2); MEM_BYTES=16MiB; MEM_N=1,2
  ICE_SIZES=4KiB,64KiB; STREAM_ARGS=(--sizes 64,4KiB --rounds 50 --rounds-large 2)
else
  PROBE_MIB=64; CP_N=2000; REG=1,10,100,1000,10000,100000; PROBES=200
  SIZES_SCALE=4KiB,1MiB,64MiB,1GiB; REPS=5; WAKE_N=20000
  LIST_ARGS=(--arrays 100000 --probes 2000)
  LOCK_ARGS=(--n 1000000 --contended 200000 --rounds 20000 --deaths 9); HO_SIZES=4KiB,1MiB,64MiB,1GiB
  HO_ARGS=(--repeat 20 --repeat-large 9 --repeat-huge 5); MEM_BYTES=1GiB; MEM_N=1,2,4
  ICE_SIZES=$HO_SIZES; STREAM_ARGS=(--sizes 64,4KiB,1MiB,64MiB --rounds 2000 --rounds-large 20)
fi
B=$BUILD/bench
M=(--machine "$MACHINE")

# --- shmarray benchmarks (one broker) ---------------------------------------------------------------
stage "starting shmarrayd"
"$BUILD/server/shmarrayd" --socket "$SOCK" --log-level warn &
BROKER=$!
for _ in $(seq 200); do [ -S "$SOCK" ] && break; sleep 0.05; done
[ -S "$SOCK" ] || { echo "shmarrayd did not start" >&2; exit 1; }

if wants probe; then stage "machine probe"; "$B/bench_probe" --mib "$PROBE_MIB" "${M[@]}" --csv "$OUT/probe.csv"; fi
if wants control; then
  stage "control plane, clients $COUNTS"
  "$B/bench_control_plane" --socket "$SOCK" --clients "$COUNTS" --iterations "$CP_N" "${M[@]}" \
    --csv "$OUT/control_plane.csv"
fi
if wants scale; then
  stage "scale: registry $REG, sizes $SIZES_SCALE"
  "$B/bench_control_plane" --socket "$SOCK" --clients "" --scale-registry "$REG" --probes "$PROBES" \
    --scale-sizes "$SIZES_SCALE" --reps "$REPS" "${M[@]}" --csv-scale "$OUT/scale.csv"
fi
if wants list; then
  stage "stat while another client lists ${LIST_ARGS[1]} arrays"
  "$B/bench_list_interference" --socket "$SOCK" "${LIST_ARGS[@]}" "${M[@]}" --csv "$OUT/list_interference.csv"
fi
if wants wakeup; then stage "wake-up latency"; "$B/bench_wakeup" --rounds "$WAKE_N" "${M[@]}" --csv "$OUT/wakeup.csv"; fi
if wants lock; then
  stage "write lock: owner word vs glibc robust mutex"
  "$B/bench_write_lock" "${LOCK_ARGS[@]}" "${M[@]}" --csv "$OUT/write_lock.csv"
fi
if wants handoff; then
  stage "handoff (C++): sizes $HO_SIZES"
  "$B/bench_handoff" --socket "$SOCK" --sizes "$HO_SIZES" "${HO_ARGS[@]}" "${M[@]}" --csv "$OUT/handoff.csv"
fi
if wants stream; then
  stage "streams: publish -> take -> read all, vs mapped array, socket copy, bare spin"
  "$B/bench_stream_latency" --socket "$SOCK" "${STREAM_ARGS[@]}" "${M[@]}" --csv "$OUT/stream.csv"
  if [ -d "$BUILD/python" ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    stage "streams (Python): 480x640x3 uint8 frames/s vs multiprocessing.Queue and shared_memory"
    rm -f "$OUT/python_stream.csv"
    PYTHONPATH="$BUILD/python" /usr/bin/python3 bench/python_stream.py --socket "$SOCK" \
      --frames "$([ "$SMOKE" = 1 ] && echo 50 || echo 2000)" "${M[@]}" --csv "$OUT/python_stream.csv"
  fi
fi
if wants memory; then
  stage "memory: $MEM_BYTES, consumers $MEM_N"
  "$B/bench_memory" --socket "$SOCK" --bytes "$MEM_BYTES" --consumers "$MEM_N" "${M[@]}" --csv "$OUT/memory.csv"
fi
if wants python; then
  if [ -d "$BUILD/python" ] && /usr/bin/python3 -c 'import numpy' 2>/dev/null; then
    stage "handoff (Python)"
    py=(/usr/bin/python3 bench/python_handoff.py --socket "$SOCK" --build "$BUILD" --full-read --machine "$MACHINE")
    if [ "$SMOKE" = 1 ]; then
      PYTHONPATH="$BUILD/python" "${py[@]}" --smoke --csv "$OUT/python_handoff.csv"
    else
      # Rounds: 20 / 9 / 3; pickle moves 1 GiB through a pipe several times over (tens of
      # seconds per round here), so it gets one round after its warm-up at 1 GiB.
      PYTHONPATH="$BUILD/python" "${py[@]}" --sizes 4KiB,1MiB --repeat 20 --csv "$OUT/python_handoff.csv"
      PYTHONPATH="$BUILD/python" "${py[@]}" --sizes 64MiB --repeat 9 --csv "$OUT/python_handoff_64m.csv"
      PYTHONPATH="$BUILD/python" "${py[@]}" --sizes 1GiB --repeat 3 --methods shmarray,shared_memory \
        --csv "$OUT/python_handoff_1g.csv"
      PYTHONPATH="$BUILD/python" "${py[@]}" --sizes 1GiB --repeat 1 --methods pickle \
        --csv "$OUT/python_handoff_1g_pickle.csv"
    fi
  else
    echo "skipping the Python handoff: no Python module in $BUILD/python (or no NumPy)"
  fi
fi
if wants frames; then
  if [ -d "$BUILD/python" ] && /usr/bin/python3 -c 'import pandas' 2>/dev/null; then
    stage "frames: put_frame + open_frame vs pickle (pandas DataFrame handoff)"
    fr=(/usr/bin/python3 bench/frame_share.py --socket "$SOCK" --build "$BUILD" --machine "$MACHINE")
    if [ "$SMOKE" = 1 ]; then
      "${fr[@]}" --smoke --csv "$OUT/frame_share.csv"
    else
      "${fr[@]}" --rows 10000000 --repeat 3 --consumers 4 --csv "$OUT/frame_share.csv"
    fi
  else
    echo "skipping frames: no Python module in $BUILD/python (or no pandas)"
  fi
fi
stop_broker

# --- iceoryx (its own daemon, RouDi: one per machine, so runs of this script take turns) ----------
if wants iceoryx; then
  status=""
  if [ ! -x "$B/bench_iceoryx_handoff" ] || ! command -v iox-roudi >/dev/null; then
    status="not built: iceoryx is not installed (Debian: iceoryx, libiceoryx-posh-dev)"
  else
    exec 9>/tmp/shmarray-bench-iceoryx.lock
    if ! flock -w "$([ "$SMOKE" = 1 ] && echo 0 || echo 120)" 9; then
      status="skipped: another benchmark run holds the iceoryx lock (/tmp/shmarray-bench-iceoryx.lock)"
    elif pgrep -x iox-roudi >/dev/null; then
      status="skipped: an iox-roudi not started by this script is running"
    fi
  fi
  if [ -z "$status" ]; then
    stage "iceoryx: starting iox-roudi with pools for 64 B and $ICE_SIZES"
    python3 bench/roudi_config.py "$ICE_SIZES" > "$TMP/roudi.toml"
    iox-roudi -c "$TMP/roudi.toml" -l info > "$TMP/roudi.log" 2>&1 &
    ROUDI=$!
    for _ in $(seq 1800); do grep -q "RouDi is ready" "$TMP/roudi.log" && break; kill -0 "$ROUDI" 2>/dev/null || break; sleep 0.1; done
    if grep -q "RouDi is ready" "$TMP/roudi.log"; then
      "$B/bench_iceoryx_wakeup" --rounds "$WAKE_N" "${M[@]}" --csv "$OUT/iceoryx_wakeup.csv"
      "$B/bench_iceoryx_handoff" --sizes "$ICE_SIZES" "${HO_ARGS[@]}" "${M[@]}" --csv "$OUT/iceoryx_handoff.csv"
      status="measured: iceoryx $(dpkg-query -W -f='${Version}' iceoryx 2>/dev/null || echo '?')"
    else
      cat "$TMP/roudi.log" >&2
      status="failed: iox-roudi did not become ready"
    fi
    stop_roudi
  fi
  echo "iceoryx: $status"
  echo "$status" > "$OUT/iceoryx_status.txt"
fi

# --- across hosts (issue 15): two network namespaces, its own brokers; needs root -----------------
if wants hosts; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "across hosts: skipped (network namespaces need root)"
  elif [ ! -x "$B/bench_across_hosts" ]; then
    echo "across hosts: skipped (bench_across_hosts not built: configure with the tests on)"
  else
    rm -f "$OUT/across_hosts.csv"
    if [ "$SMOKE" = 1 ]; then
      HOSTS_ARGS=(--sizes 4KiB --repeat 3 --links veth --paced-hz 20)
    else
      HOSTS_ARGS=(--sizes "4KiB,1MiB,64MiB$([ "$HOSTS_1GIB" = 1 ] && echo ,1GiB)" --repeat 60 --repeat-large 6
        --paced-hz 1000)
    fi
    stage "across hosts: mirror vs TCP copy and ucx_perftest over veth and loopback (${HOSTS_ARGS[*]})"
    "$B/bench_across_hosts" "${HOSTS_ARGS[@]}" "${M[@]}" --csv "$OUT/across_hosts.csv"
  fi
fi

echo "load_end,\"$(cut -d' ' -f1-3 /proc/loadavg)\"" >> "$META"
echo "seconds,$(( $(date +%s) - T_START ))" >> "$META"

# --- report -------------------------------------------------------------------------------------------
stage "report"
if [ "$SMOKE" = 1 ]; then
  /usr/bin/python3 bench/plot.py --out-md "$TMP/benchmarks.md" --img "$TMP/img" "$OUT"
else
  sets=(docs/bench-results/*/)
  case "$OUT/" in "$REPO"/docs/bench-results/*) ;; *) sets+=("$OUT") ;; esac
  /usr/bin/python3 bench/plot.py --out-md docs/benchmarks.md --img docs/img "${sets[@]}"
  echo "raw results: $OUT; report: docs/benchmarks.md"
fi
echo "total: $(( $(date +%s) - T_START )) s"
