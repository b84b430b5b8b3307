#!/usr/bin/env python3
"""Prints an iox-roudi configuration (TOML) with memory pools for 64-byte messages and for each
size given, e.g. `roudi_config.py 4KiB,1MiB,64MiB`: 4 chunks per size below 64 MiB, 1 above,
each chunk 256 bytes larger than its message (iceoryx's chunk header). Used by bench/run.sh and
bench/stream_vs_iceoryx.sh."""
import sys

UNITS = {"KIB": 1 << 10, "MIB": 1 << 20, "GIB": 1 << 30}


def size(text: str) -> int:
    text = text.strip().upper()
    for unit, factor in UNITS.items():
        if text.endswith(unit):
            return int(text[:-len(unit)]) * factor
    return int(text)


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] in ("-h", "--help"):
        sys.exit(__doc__)
    sizes = [size(s) for s in sys.argv[1].split(",")]
    pools = [(128, 64)] + [(s + 256, 4 if s < (64 << 20) else 1) for s in sizes]
    print("[general]\nversion = 1\n\n[[segment]]\n")
    for chunk, count in sorted(pools):
        print(f"[[segment.mempool]]\nsize = {chunk}\ncount = {count}\n")


if __name__ == "__main__":
    main()
