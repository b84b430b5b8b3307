#!/usr/bin/env python3
"""A live pandas DataFrame over a shared array that another process keeps updating.

The reader creates "demo/sensors" (8 sensors x 3 readings, float64) and wraps it once in
pandas.DataFrame(..., copy=False): no copy, the DataFrame's block *is* the shared memory. A writer
process rewrites the readings in place and publishes; the reader waits for each publish and prints
the same DataFrame object again, never rebuilding it.

    shmarrayd &
    python3 examples/python/pandas_view.py              # starts its own writer process
    # or, in two terminals:
    python3 examples/python/pandas_view.py --role reader
    python3 examples/python/pandas_view.py --role writer
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

import numpy as np
import pandas as pd

import shmarray

COLUMNS = ["temperature", "pressure", "humidity"]
SENSORS = 8


def writer(args: argparse.Namespace) -> int:
    with shmarray.Client(args.socket) as client:
        readings = client.open(args.name, writable=True, wait=args.timeout_s)
    rng = np.random.default_rng(1)
    for update in range(1, args.updates + 1):
        time.sleep(args.interval_s)
        # Lock, write in place, publish: readers wake up and see the new values.
        with shmarray.lock(readings, timeout=args.timeout_s):
            readings[:, 0] = 20.0 + update + rng.normal(0, 0.1, SENSORS)
            readings[:, 1] = 1013.0 + rng.normal(0, 1.0, SENSORS)
            readings[:, 2] = 40.0 + 2 * update + rng.normal(0, 0.5, SENSORS)
            version = shmarray.publish(readings)
        print(f"writer: update {update} published as version {version}", flush=True)
    return 0


def reader(args: argparse.Namespace, spawn_writer: bool) -> int:
    with shmarray.Client(args.socket) as client:
        readings = client.create(args.name, (SENSORS, len(COLUMNS)), "float64")
        try:
            frame = pd.DataFrame(readings, columns=COLUMNS, copy=False)
            frame.index.name = "sensor"
            assert np.shares_memory(frame.to_numpy(), readings), "pandas copied the array"
            print(f"reader: DataFrame over '{args.name}' shares the shared pages "
                  f"(numpy.shares_memory: True); waiting for {args.updates} updates", flush=True)
            child = None
            if spawn_writer:
                child = subprocess.Popen([sys.executable, __file__, "--role", "writer",
                                          "--name", args.name, "--updates", str(args.updates),
                                          "--interval-s", str(args.interval_s),
                                          *(["--socket", args.socket] if args.socket else [])])
            version = 0
            try:
                while version < args.updates:
                    version = shmarray.wait(readings, newer_than=version, timeout=args.timeout_s)
                    # Nothing re-read or rebuilt: the same DataFrame shows the writer's values.
                    summary = frame.agg(["mean", "min", "max"]).round(2)
                    print(f"\nreader: version {version}\n{summary}", flush=True)
            finally:
                if child is not None:
                    child.wait(timeout=args.timeout_s)
            return 0 if child is None or child.returncode == 0 else 1
        finally:
            client.remove(args.name)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", default=None, help="broker socket (default: the standard rule)")
    parser.add_argument("--name", default="demo/sensors", help="array name (default: %(default)s)")
    parser.add_argument("--role", choices=["both", "reader", "writer"], default="both",
                        help="both (default): read, and run the writer as a child process")
    parser.add_argument("--updates", type=int, default=5, help="number of updates")
    parser.add_argument("--interval-s", type=float, default=0.3, help="seconds between updates")
    parser.add_argument("--timeout-s", type=float, default=30.0, help="longest wait for anything")
    args = parser.parse_args()
    try:
        if args.role == "writer":
            return writer(args)
        return reader(args, spawn_writer=args.role == "both")
    except shmarray.Error as e:
        print(f"pandas_view: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
