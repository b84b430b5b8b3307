#!/usr/bin/env python3
"""Frames per second of 480x640x3 uint8 frames from one Python process to another, through
  - a shmarray stream (loan: copy the frame into the slot; take: read it in place),
  - multiprocessing.Queue (pickles every frame through a pipe),
  - multiprocessing.shared_memory with a hand-built ring (slots + two semaphores).
The consumer reads every byte of every frame (a sum) and checks a per-frame marker. Results go to
stdout and, with --csv, to a CSV (machine,method,frames,seconds,frames_per_s,mib_per_s).

  PYTHONPATH=build/python python3 bench/python_stream.py --socket /tmp/x/s.sock [--frames 2000]
"""

from __future__ import annotations

import argparse
import csv
import multiprocessing as mp
import os
import time
from multiprocessing import shared_memory

import numpy as np

SHAPE = (480, 640, 3)
NBYTES = 480 * 640 * 3
SLOTS = 8


def frame_for(i: int, base: np.ndarray) -> np.ndarray:
    base[0, 0, 0] = i % 251
    return base


def consume_stream(socket: str, name: str, frames: int, done) -> None:
    import shmarray

    with shmarray.Client(socket) as c:
        sub = c.subscribe(name, wait=10.0, max_held=1)
        done.put("ready")
        total = 0
        for i in range(frames):
            f = sub.take(timeout=30)
            assert f[0, 0, 0] == (i + 1) % 251, (int(f[0, 0, 0]), i)
            total += int(f.sum(dtype=np.uint64))
            del f
        done.put(total)


def consume_queue(q, frames: int, done) -> None:
    done.put("ready")
    total = 0
    for i in range(frames):
        f = q.get()
        assert f[0, 0, 0] == (i + 1) % 251
        total += int(f.sum(dtype=np.uint64))
    done.put(total)


def consume_ring(shm_name: str, full, free, frames: int, done) -> None:
    shm = shared_memory.SharedMemory(name=shm_name)
    ring = np.ndarray((SLOTS,) + SHAPE, dtype=np.uint8, buffer=shm.buf)
    done.put("ready")
    total = 0
    for i in range(frames):
        full.acquire()
        f = ring[i % SLOTS]
        assert f[0, 0, 0] == (i + 1) % 251
        total += int(f.sum(dtype=np.uint64))
        free.release()
    del ring, f
    shm.close()
    done.put(total)


def run_stream(socket: str, frames: int, base: np.ndarray) -> float:
    import shmarray

    name = f"bench/pystream-{os.getpid()}"
    with shmarray.Client(socket) as c:
        pub = c.create_stream(name, slots=SLOTS, slot_bytes=NBYTES)
        done = mp.Queue()
        p = mp.Process(target=consume_stream, args=(socket, name, frames, done))
        p.start()
        assert done.get(timeout=30) == "ready"
        t0 = time.perf_counter()
        for i in range(1, frames + 1):
            with pub.loan(SHAPE, "uint8", timeout=30) as slot:
                slot[:] = frame_for(i, base)
        done.get(timeout=120)
        seconds = time.perf_counter() - t0
        p.join(30)
        del pub
        c.remove(name)
    return seconds


def run_queue(frames: int, base: np.ndarray) -> float:
    q = mp.Queue(maxsize=SLOTS)
    done = mp.Queue()
    p = mp.Process(target=consume_queue, args=(q, frames, done))
    p.start()
    assert done.get(timeout=30) == "ready"
    t0 = time.perf_counter()
    for i in range(1, frames + 1):
        q.put(frame_for(i, base).copy())  # put() pickles later, in a feeder thread
    done.get(timeout=120)
    seconds = time.perf_counter() - t0
    p.join(30)
    return seconds


def run_ring(frames: int, base: np.ndarray) -> float:
    shm = shared_memory.SharedMemory(create=True, size=SLOTS * NBYTES)
    try:
        ring = np.ndarray((SLOTS,) + SHAPE, dtype=np.uint8, buffer=shm.buf)
        full, free = mp.Semaphore(0), mp.Semaphore(SLOTS)
        done = mp.Queue()
        p = mp.Process(target=consume_ring, args=(shm.name, full, free, frames, done))
        p.start()
        assert done.get(timeout=30) == "ready"
        t0 = time.perf_counter()
        for i in range(1, frames + 1):
            free.acquire()
            ring[(i - 1) % SLOTS] = frame_for(i, base)
            full.release()
        done.get(timeout=120)
        seconds = time.perf_counter() - t0
        p.join(30)
        del ring
    finally:
        shm.close()
        shm.unlink()
    return seconds


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--socket", required=True)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--machine", default="this machine")
    ap.add_argument("--csv", default="")
    a = ap.parse_args()
    mp.set_start_method("fork")
    base = np.random.default_rng(1).integers(0, 255, SHAPE, dtype=np.uint8)
    rows = []
    for method, fn in (
        ("shmarray stream", lambda: run_stream(a.socket, a.frames, base)),
        ("multiprocessing.Queue", lambda: run_queue(a.frames, base)),
        ("shared_memory + hand-built ring", lambda: run_ring(a.frames, base)),
    ):
        seconds = fn()
        fps = a.frames / seconds
        rows.append((a.machine, method, a.frames, f"{seconds:.3f}", f"{fps:.1f}",
                     f"{fps * NBYTES / 2**20:.1f}"))
        print(f"{method:34s} {fps:10.1f} frames/s  {fps * NBYTES / 2**20:8.1f} MiB/s", flush=True)
    if a.csv:
        new = not os.path.exists(a.csv) or os.path.getsize(a.csv) == 0
        with open(a.csv, "a", newline="") as f:
            w = csv.writer(f)
            if new:
                w.writerow(["machine", "method", "frames", "seconds", "frames_per_s", "mib_per_s"])
            w.writerows(rows)


if __name__ == "__main__":
    main()
