#!/usr/bin/env python3
"""Python handoff of a float64 array between two processes: shmarray vs the usual alternatives.

A producer process has a filled float64 array of N bytes; the handoff is the time from the
producer starting to hand it over to the consumer process holding a usable ndarray and having
read its first element (both timestamps from CLOCK_MONOTONIC, which all processes share):

  shmarray       the consumer receives the array's name over a Pipe, Client.open()s it (fd over
                 the broker's socket + mmap), reads [0]. Zero copy.
  shared_memory  multiprocessing.shared_memory.SharedMemory: the name goes through a Pipe, the
                 consumer attaches, wraps the buffer in an ndarray, reads [0]. Zero copy.
  pickle         the array itself is sent through the Pipe (pickled, copied through the kernel,
                 unpickled). Copies every byte.

Filling the array happens before the clock starts, for every method. With --full-read the
consumer also sums the whole array after the handoff (reported separately): first touches of a
fresh mapping's pages cost a fault each, which the handoff of the zero-copy methods defers.

    bench/python_handoff.py                       # 4 KiB, 1 MiB, 64 MiB, 1 GiB
    bench/python_handoff.py --smoke               # tiny sizes, a few repetitions (CI)
    bench/python_handoff.py --sizes 4KiB,16MiB --repeat 50 --full-read

Starts its own broker (<build>/server/shmarrayd on a temporary socket) unless --socket is given.
Never asserts a number.
"""

from __future__ import annotations

import argparse
import csv
import gc
import multiprocessing as mp
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import shared_memory
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
METHODS = ("shmarray", "shared_memory", "pickle")
UNITS = {"": 1, "B": 1, "KIB": 1 << 10, "K": 1 << 10, "KB": 1000, "MIB": 1 << 20, "M": 1 << 20,
         "MB": 1000 ** 2, "GIB": 1 << 30, "G": 1 << 30, "GB": 1000 ** 3}


def import_shmarray(build: Path):
    """The shmarray module: installed, or else the one in <build>/python."""
    import importlib

    try:
        return importlib.import_module("shmarray")
    except ImportError:
        sys.path.insert(0, str(build / "python"))
        return importlib.import_module("shmarray")


def parse_size(text: str) -> int:
    text = text.strip().upper()
    digits = text.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    unit = text[len(digits):]
    if unit not in UNITS or not digits:
        raise argparse.ArgumentTypeError(f"bad size {text!r} (e.g. 4KiB, 1MiB, 64MiB, 1GiB)")
    size = int(float(digits) * UNITS[unit])
    return max(8, size - size % 8)  # whole float64 elements


def human(nbytes: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if nbytes >= scale and nbytes % scale == 0:
            return f"{nbytes // scale} {unit}"
    return f"{nbytes} B"


def fmt_time(ns: float) -> str:
    if ns < 1e3:
        return f"{ns:.0f} ns"
    if ns < 1e6:
        return f"{ns / 1e3:.1f} us"
    if ns < 1e9:
        return f"{ns / 1e6:.2f} ms"
    return f"{ns / 1e9:.3f} s"


# --- consumer process ----------------------------------------------------------------------------

def consumer_main(conn, socket_path: str, build: str, full_read: bool) -> None:
    shmarray = import_shmarray(Path(build))

    client = shmarray.Client(socket_path)  # one connection for the whole run, like a real app
    conn.send("ready")
    while True:
        msg = conn.recv()
        kind = msg[0]
        if kind == "stop":
            break
        if kind == "shmarray":
            arr = client.open(msg[1])
            first = float(arr[0])
            t1 = time.monotonic_ns()
        elif kind == "shared_memory":
            shm = shared_memory.SharedMemory(name=msg[1])
            arr = np.ndarray((msg[2],), dtype=np.float64, buffer=shm.buf)
            first = float(arr[0])
            t1 = time.monotonic_ns()
            # Python < 3.13 also registers an attached segment with the resource tracker; this
            # process shares the producer's tracker (spawned by it), so the producer's unlink()
            # unregisters it once for both.
        elif kind == "pickle":
            arr = msg[1]  # conn.recv() above already unpickled it
            first = float(arr[0])
            t1 = time.monotonic_ns()
        else:
            raise RuntimeError(f"unknown message {kind!r}")
        full_ns = 0
        if full_read:
            t2 = time.monotonic_ns()
            arr.sum()
            full_ns = time.monotonic_ns() - t2
        # Free everything before answering, so no teardown (unmapping a gigabyte) lands in the
        # next round's timing: `msg` holds the unpickled array too.
        del arr, msg
        if kind == "shared_memory":
            shm.close()
        gc.collect()
        conn.send((t1, first, full_ns))
    client.close()


# --- producer side ---------------------------------------------------------------------------------

class Producer:
    def __init__(self, shmarray, socket_path: str, conn, settle_s: float):
        self.shmarray = shmarray
        self.settle_s = settle_s
        self.client = shmarray.Client(socket_path)
        self.conn = conn
        self.counter = 0

    def measure(self, method: str, nbytes: int) -> tuple[int, int]:
        """One handoff of a filled array of nbytes; returns (handoff ns, full-read ns)."""
        n = nbytes // 8
        self.counter += 1
        # Let the kernel finish freeing the previous round's memory (pages of a removed segment,
        # a gigabyte of pickle buffers) before the clock starts: on a 2-vCPU VM that background
        # work otherwise lands in whichever handoff comes next.
        time.sleep(self.settle_s)
        marker = float(self.counter)
        cleanup = None
        if method == "shmarray":
            name = f"bench/handoff/{os.getpid()}/{self.counter}"
            arr = self.client.create(name, n, "float64")
            arr.fill(1.0)
            arr[0] = marker
            message = ("shmarray", name)
            cleanup = lambda: self.client.remove(name)  # noqa: E731
        elif method == "shared_memory":
            shm = shared_memory.SharedMemory(create=True, size=nbytes)
            arr = np.ndarray((n,), dtype=np.float64, buffer=shm.buf)
            arr.fill(1.0)
            arr[0] = marker
            message = ("shared_memory", shm.name, n)

            def cleanup():
                shm.close()
                shm.unlink()
        else:
            arr = np.empty(n, dtype=np.float64)
            arr.fill(1.0)
            arr[0] = marker
            message = ("pickle", arr)
        try:
            t0 = time.monotonic_ns()
            self.conn.send(message)
            t1, first, full_ns = self.conn.recv()
        finally:
            del message, arr
            gc.collect()
            if cleanup is not None:
                cleanup()
        if first != marker:
            raise RuntimeError(f"{method}: consumer read {first}, expected {marker}")
        return t1 - t0, full_ns


def start_broker(build: Path, directory: str) -> tuple[subprocess.Popen, str]:
    shmarrayd = build / "server" / "shmarrayd"
    if not shmarrayd.exists():
        sys.exit(f"python_handoff: {shmarrayd} not found: build first, or pass --build/--socket")
    socket_path = os.path.join(directory, "s.sock")
    proc = subprocess.Popen([str(shmarrayd), "--socket", socket_path, "--log-level", "warn"])
    deadline = time.monotonic() + 10
    while not os.path.exists(socket_path):
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            sys.exit("python_handoff: shmarrayd did not start")
        time.sleep(0.02)
    return proc, socket_path


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog=__doc__.split("\n\n", 1)[1])
    parser.add_argument("--sizes", default="4KiB,1MiB,64MiB,1GiB",
                        help="comma-separated sizes (default: %(default)s)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="measured handoffs per size and method (default: 20; 5 at >= 256 MiB)")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes and 3 repetitions: only proves the benchmark runs")
    parser.add_argument("--methods", default=",".join(METHODS), help="subset of %(default)s")
    parser.add_argument("--full-read", action="store_true",
                        help="also time the consumer reading every element after the handoff")
    parser.add_argument("--settle-ms", type=float, default=50.0,
                        help="pause before each handoff, outside the timing (default: %(default)s)")
    parser.add_argument("--socket", help="use the broker at this socket instead of starting one")
    parser.add_argument("--build", type=Path,
                        default=Path(os.environ.get("SHMARRAY_BUILD_DIR", REPO / "build")),
                        help="build directory (default: $SHMARRAY_BUILD_DIR or <repo>/build)")
    parser.add_argument("--csv", type=Path, help="also write the raw samples here")
    parser.add_argument("--machine", default=None, help="label printed with the results")
    args = parser.parse_args()
    if args.smoke:
        args.sizes, args.repeat = "4KiB,64KiB", 3
    sizes = [parse_size(s) for s in args.sizes.split(",") if s.strip()]
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    for m in methods:
        if m not in METHODS:
            parser.error(f"unknown method {m!r}")
    shmarray = import_shmarray(args.build.resolve())

    tmp = tempfile.mkdtemp(prefix="shmarray-handoff-")
    broker = None
    consumer = None
    rows: list[tuple[int, str, int, int]] = []
    try:
        if args.socket:
            socket_path = args.socket
        else:
            broker, socket_path = start_broker(args.build.resolve(), tmp)
        ctx = mp.get_context("spawn")  # a clean consumer: no inherited descriptors or mappings
        parent_conn, child_conn = ctx.Pipe()
        consumer = ctx.Process(target=consumer_main,
                               args=(child_conn, socket_path, str(args.build.resolve()),
                                     args.full_read))
        consumer.start()
        if not parent_conn.poll(30) or parent_conn.recv() != "ready":
            raise RuntimeError("consumer did not start")
        producer = Producer(shmarray, socket_path, parent_conn, args.settle_ms / 1000)

        machine = args.machine or f"{os.cpu_count()}-core {platform.machine()}"
        print(f"machine: {machine}; kernel {platform.release()}; Python "
              f"{platform.python_version()}, NumPy {np.__version__}; shmarray "
              f"{shmarray.__version__}")
        for nbytes in sizes:
            repeat = args.repeat or (5 if nbytes >= 256 << 20 else 20)
            for method in methods:          # warm-up, not counted
                producer.measure(method, nbytes)
            for _ in range(repeat):
                for method in methods:      # interleaved, so drift hits every method alike
                    handoff, full = producer.measure(method, nbytes)
                    rows.append((nbytes, method, handoff, full))
        parent_conn.send(("stop",))
        consumer.join(timeout=30)
    finally:
        if consumer is not None and consumer.is_alive():
            consumer.kill()
            consumer.join(timeout=10)
        if broker is not None:
            broker.send_signal(signal.SIGTERM)
            try:
                broker.wait(timeout=10)
            except subprocess.TimeoutExpired:
                broker.kill()
        shutil.rmtree(tmp, ignore_errors=True)

    print_table(rows, sizes, methods, args.full_read)
    if args.csv:
        with open(args.csv, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(["bytes", "method", "handoff_ns", "full_read_ns"])
            w.writerows(rows)
    return 0


def print_table(rows, sizes, methods, full_read: bool) -> None:
    header = f"{'size':>9}  {'method':<14} {'n':>3} {'handoff median':>15} {'min':>10} {'x shmarray':>11}"
    if full_read:
        header += f" {'full read median':>17}"
    print("\n" + header)
    print("-" * len(header))
    for nbytes in sizes:
        medians = {}
        for method in methods:
            samples = [r[2] for r in rows if r[0] == nbytes and r[1] == method]
            if samples:
                medians[method] = statistics.median(samples)
        base = medians.get("shmarray")
        for method in methods:
            samples = [r for r in rows if r[0] == nbytes and r[1] == method]
            if not samples:
                continue
            handoffs = [r[2] for r in samples]
            ratio = f"{medians[method] / base:10.1f}x" if base else "          -"
            line = (f"{human(nbytes):>9}  {method:<14} {len(samples):>3} "
                    f"{fmt_time(medians[method]):>15} {fmt_time(min(handoffs)):>10} {ratio:>11}")
            if full_read:
                line += f" {fmt_time(statistics.median(r[3] for r in samples)):>17}"
            print(line)
    print("(x shmarray: median handoff of the method / median handoff of shmarray)")


if __name__ == "__main__":
    sys.exit(main())
