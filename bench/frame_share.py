#!/usr/bin/env python3
"""Handing a pandas DataFrame to other processes: shmarray frames vs the usual alternatives.

The producer holds a DataFrame of --rows rows and 6 columns (timestamps, three float64, an int64,
a categorical symbol). Each method gets it to consumer processes (fresh interpreters, spawned and
ready before the clock starts):

  shmarray        put_frame (one copy into a shared segment, publish), the name through a Pipe,
                  the consumer open_frame()s it: a DataFrame whose columns are the shared pages.
  pickle-pipe     the DataFrame itself through a multiprocessing Pipe (pickled, copied through
                  the kernel, unpickled).
  pickle-devshm   DataFrame.to_pickle to /dev/shm, the path through a Pipe, pandas.read_pickle.
                  (Parquet is the issue's other candidate; it needs pyarrow or fastparquet, which
                  Debian's python3 here lacks, so it is reported as not available.)

Measured, same run: the time from the producer starting the handoff to the consumer holding a
usable DataFrame (and having read one value), median of --repeat rounds (CLOCK_MONOTONIC, shared
by all processes); then the memory of --consumers consumers that each hold the DataFrame and
have read every column: the sum of their PSS (/proc/PID/smaps_rollup, shared pages divided among
the processes mapping them), less the PSS of as many idle consumers (Python + pandas imported).

    bench/frame_share.py --rows 10000000 --csv docs/bench-results/<machine>/frame_share.csv
    bench/frame_share.py --smoke

Starts its own broker (<build>/server/shmarrayd on a temporary socket) unless --socket is given.
Never asserts a number.
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
METHODS = ("shmarray", "pickle-pipe", "pickle-devshm")


def make_frame(rows: int):
    import numpy as np
    import pandas as pd
    k = np.arange(rows)
    return pd.DataFrame({
        "t": (np.int64(1_700_000_000_000_000_000) + k * 1000).view("M8[ns]"),
        "price": 100 + np.sin(k / 1000.0),
        "bid": 99.99 + np.sin(k / 1000.0),
        "ask": 100.01 + np.sin(k / 1000.0),
        "size": (k % 10 + 1) * 100,
        "sym": pd.Categorical.from_codes((k % 8).astype("i1"),
                                         ["AAPL", "MSFT", "GOOG", "AMZN", "META", "NVDA", "TSLA", "IBM"]),
    })


def pss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    return 0


def consumer(conn, build: str, socket: str) -> None:
    """Receives handoffs until None: ("time", method, payload) answers the monotonic time at which
    it held a usable DataFrame; ("hold", method, payload) keeps it, reads every column and
    answers its PSS."""
    sys.path.insert(0, str(Path(build) / "python"))
    import numpy as np  # noqa: F401
    import pandas as pd
    import shmarray
    client = shmarray.Client(socket)
    conn.send(("ready", pss_kib(os.getpid())))
    held = None
    while True:
        msg = conn.recv()
        if msg is None:
            break
        kind, method = msg[0], msg[1]
        if method == "shmarray":
            df = client.open_frame(msg[2])
        elif method == "pickle-pipe":
            df = conn.recv()
        else:
            df = pd.read_pickle(msg[2])
        _ = df["price"].iloc[0]
        done = time.monotonic()
        if kind == "time":
            conn.send(done)
            del df
        else:
            for c in df.columns:  # touch every page of every column
                col = df[c]
                _ = col.cat.codes.to_numpy().sum() if c == "sym" else col.to_numpy().view("u1").sum()
            held = (method, df)
            conn.send(pss_kib(os.getpid()))
    client.close()


def start_consumers(n: int, build: str, socket: str):
    ctx = mp.get_context("spawn")
    out = []
    for _ in range(n):
        parent, child = ctx.Pipe()
        p = ctx.Process(target=consumer, args=(child, build, socket))
        p.start()
        tag, idle = parent.recv()
        assert tag == "ready"
        out.append((p, parent, idle))
    return out


def hand_over(method, df, conns, client, round_no):
    """Starts one handoff to every conn in `conns`; returns (t0, name or path)."""
    t0 = time.monotonic()
    if method == "shmarray":
        name = f"bench/frame/{round_no}"
        client.put_frame(name, df)
        return t0, name
    if method == "pickle-pipe":
        return t0, None
    path = f"/dev/shm/shmarray-bench-frame-{os.getpid()}-{round_no}.pkl"
    df.to_pickle(path)
    return t0, path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--consumers", type=int, default=4)
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--socket", default=None)
    ap.add_argument("--build", default=str(REPO / "build"))
    ap.add_argument("--machine", default="")
    ap.add_argument("--csv", default=None)
    ap.add_argument("--smoke", action="store_true", help="10,000 rows, one round")
    args = ap.parse_args()
    if args.smoke:
        args.rows, args.repeat = 10_000, 1
    sys.path.insert(0, str(Path(args.build) / "python"))
    import pandas as pd
    import shmarray

    tmp = None
    broker = None
    socket = args.socket
    if socket is None:
        tmp = tempfile.mkdtemp(prefix="shmarray-bench-frame-")
        socket = os.path.join(tmp, "s.sock")
        broker = subprocess.Popen([str(Path(args.build) / "server" / "shmarrayd"), "--socket", socket,
                                   "--log-level", "warn"])
        deadline = time.monotonic() + 10
        while True:
            try:
                shmarray.Client(socket).close()
                break
            except shmarray.BrokerUnavailable:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    rows = []
    try:
        client = shmarray.Client(socket)
        df = make_frame(args.rows)
        nbytes = int(df.memory_usage(index=False, deep=True).sum())
        print(f"frame_share: {args.rows:,} rows x {df.shape[1]} columns, {nbytes / 2**20:.0f} MiB; "
              f"pandas {pd.__version__}; parquet: not available (no pyarrow/fastparquet)")
        for method in args.methods.split(","):
            # Time to a usable DataFrame: one consumer, --repeat rounds after a warm-up.
            (proc, conn, _), = start_consumers(1, args.build, socket)
            times = []
            for r in range(args.repeat + 1):
                t0, ref = hand_over(method, df, [conn], client, r)
                conn.send(("time", method, ref))
                if method == "pickle-pipe":
                    conn.send(df)
                done = conn.recv()
                if r > 0:
                    times.append(done - t0)
                if method == "shmarray":
                    client.remove(ref)
                elif ref:
                    os.unlink(ref)
            conn.send(None)
            proc.join(30)
            # Memory: --consumers consumers holding it at once.
            consumers = start_consumers(args.consumers, args.build, socket)
            idle = sum(c[2] for c in consumers)
            t0, ref = hand_over(method, df, [c[1] for c in consumers], client, 99)
            for _, conn, _ in consumers:
                conn.send(("hold", method, ref))
                if method == "pickle-pipe":
                    conn.send(df)
            held = sum(conn.recv() for _, conn, _ in consumers)
            for p, conn, _ in consumers:
                conn.send(None)
                p.join(30)
            if method == "shmarray":
                client.remove(ref)
            elif ref:
                os.unlink(ref)
            med = statistics.median(times)
            extra_mib = (held - idle) / 1024
            print(f"  {method:14s} time to a usable DataFrame: median {med * 1e3:9.1f} ms "
                  f"(min {min(times) * 1e3:.1f}, max {max(times) * 1e3:.1f}; {len(times)} rounds); "
                  f"{args.consumers} consumers holding it: {extra_mib:8.1f} MiB PSS beyond idle")
            rows.append({"machine": args.machine, "rows": args.rows, "frame_mib": round(nbytes / 2**20, 1),
                         "method": method, "median_ms": round(med * 1e3, 2),
                         "min_ms": round(min(times) * 1e3, 2), "max_ms": round(max(times) * 1e3, 2),
                         "rounds": len(times), "consumers": args.consumers,
                         "pss_beyond_idle_mib": round(extra_mib, 1)})
        client.close()
    finally:
        if broker is not None:
            broker.terminate()
            broker.wait(10)
        if tmp is not None:
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
