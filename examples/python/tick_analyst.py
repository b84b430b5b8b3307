"""Tick analyst: opens the frame a C++ tick_producer appends to (waiting for it to exist) as a
pandas DataFrame over the shared pages, and after each batch of ticks prints the VWAP and the
last price of the rows written so far. No row is copied: the DataFrame's columns are the
producer's pages; the version the producer publishes counts the rows it has written.

    build/examples/tick_producer --socket $S --ticks 1000 &
    PYTHONPATH=build/python python3 examples/python/tick_analyst.py --socket $S
"""

from __future__ import annotations

import argparse
import sys

import numpy as np

import shmarray


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--socket", default=None)
    p.add_argument("--name", default="md/ticks")
    p.add_argument("--timeout-s", type=float, default=30.0)
    args = p.parse_args()
    with shmarray.Client(args.socket) as client:
        ticks = client.open_frame(args.name, wait=args.timeout_s)
        shared = np.shares_memory(ticks["price"].to_numpy(), ticks.attrs["shmarray"])
        print(f"analyst: {args.name} has room for {len(ticks)} ticks; columns shared: {shared}")
        seen = 0
        while seen < len(ticks):
            try:
                seen = shmarray.wait(ticks, newer_than=seen, timeout=args.timeout_s)
            except shmarray.DeadlineExceeded:
                print(f"analyst: no tick for {args.timeout_s} s", file=sys.stderr)
                return 1
            live = ticks.iloc[:seen]  # rows [0, version) are written
            vwap = (live["price"] * live["size"]).sum() / live["size"].sum()
            print(f"analyst: {seen} ticks to {live.index[-1]}, last {live['price'].iloc[-1]:.4f}, "
                  f"VWAP {vwap:.4f}")
        client.remove(args.name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
