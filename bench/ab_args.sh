# Sourced by bench/ab_control_plane.sh and bench/ab_streams.sh: parses "RUNS OUT_DIR LABEL A B
# [LABEL A B ...]" into RUNS, OUT (created) and `variants` ("LABEL|A|B" each); prints USAGE and
# exits 2 when no variant is given.
ab_parse_args() {
  local usage=$1
  shift
  [ $# -ge 5 ] || { echo "usage: $usage" >&2; exit 2; }
  RUNS=$1
  OUT=$2
  shift 2
  mkdir -p "$OUT"
  variants=()
  while [ $# -ge 3 ]; do
    variants+=("$1|$2|$3")
    shift 3
  done
  [ $# -eq 0 ] || { echo "usage: $usage (left over: $*)" >&2; exit 2; }
}
