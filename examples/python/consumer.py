#!/usr/bin/env python3
"""Python consumer for the C++ producer example (examples/producer.cpp).

The producer creates "demo/matrix", a 1024x1024 float64 array filled with i*1024+j, and publishes
version 1. This consumer maps the same pages (no copy), checks the values, doubles every element
in place under the array's write lock, and publishes; the producer then sees the doubled values in
its own mapping.

    shmarrayd &                         # the broker (or: shmarrayd --socket ~/run/s.sock)
    build/examples/producer &           # C++: create, fill, publish, wait for us
    python3 examples/python/consumer.py

Started before the producer, it waits (up to --timeout-s) for the array to appear.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import shmarray


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", default=None, help="broker socket (default: the standard rule)")
    parser.add_argument("--name", default="demo/matrix", help="array name (default: %(default)s)")
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="how long to wait for the producer (default: %(default)s)")
    args = parser.parse_args()

    try:
        with shmarray.Client(args.socket) as client:
            # Waits for the name if the producer has not created it yet.
            matrix = client.open(args.name, writable=True, wait=args.timeout_s, populate=True)
    except shmarray.Error as e:
        print(f"consumer: {e}", file=sys.stderr)
        return 1
    # The client is closed: `matrix` stays valid (its base owns the mapping).

    try:
        version = shmarray.wait(matrix, newer_than=0, timeout=args.timeout_s)
    except TimeoutError as e:
        print(f"consumer: the producer never published: {e}", file=sys.stderr)
        return 1

    rows, cols = matrix.shape
    expected = np.arange(rows * cols, dtype=np.float64).reshape(rows, cols)  # i*cols + j
    good = int(np.count_nonzero(matrix == expected))
    print(f"consumer: opened '{args.name}' {matrix.dtype} {matrix.shape} version {version} "
          f"(zero copy: base={matrix.base!r}); [0,1]={matrix[0, 1]:g} "
          f"[{rows - 1},{cols - 1}]={matrix[-1, -1]:g}; {good} of {matrix.size} values as the "
          f"producer wrote them")

    # Write the result back in place. The lock keeps other writers out; publish wakes the producer.
    with shmarray.lock(matrix, timeout=args.timeout_s):
        matrix *= 2.0
        published = shmarray.publish(matrix)
    print(f"consumer: doubled every value in place and published version {published}")
    return 0 if good == matrix.size else 1


if __name__ == "__main__":
    sys.exit(main())
