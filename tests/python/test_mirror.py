"""Mirrors across hosts (issue 15) from Python, on one host: a Python producer publishes an array
and a DataFrame on a source broker; a Python consumer in another process reads them on a second
broker that mirrors the prefix over UCX (loopback, UCX_TLS=tcp), with the source's version
numbers, read-only. The two-namespace tests are test_two_hosts.py's."""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import pandas as pd
import pytest

import shmarray
from conftest import run_python


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def pair(broker_factory, tmpdir_short, monkeypatch):
    monkeypatch.setenv("UCX_TLS", "tcp")
    monkeypatch.setenv("UCX_WARN_UNUSED_ENV_VARS", "n")
    key = tmpdir_short / "key"
    key.write_bytes(os.urandom(32))
    os.chmod(key, 0o600)
    peer = f"127.0.0.1:{free_port()}"
    source = broker_factory("--peer-listen", peer, "--peer-key", str(key), "--peer-allow", "md/")
    mirror = broker_factory("--peer-key", str(key), "--mirror", f"md/={peer}")
    yield source, mirror, peer
    # Removed on the source first: the mirror's bridge follows, so nothing is recreated after the
    # fixtures' own cleanup.
    with shmarray.Client(source.socket) as c:
        for info in c.list():
            c.remove(info.name)
    deadline = time.monotonic() + 20
    with shmarray.Client(mirror.socket) as c:
        while c.list("md/") and time.monotonic() < deadline:
            time.sleep(0.05)


CONSUMER = r"""
import sys, numpy as np, shmarray
with shmarray.Client(sys.argv[1]) as c:
    a = c.open("md/prices", wait=20)
    v = 0
    while v < int(sys.argv[2]):
        v = shmarray.wait(a, newer_than=v, timeout=20)
    copy, version = shmarray.read_consistent(a, timeout=5)
    assert not a.flags.writeable
    print(version, float(copy.min()), float(copy.max()), c.stat("md/prices").mirror_of, flush=True)
    df = c.open_frame("md/ticks", wait=20)
    print(list(df["price"])[:3], int(df["size"].sum()), flush=True)
"""


def test_python_producer_on_the_source_python_consumer_on_the_mirror(pair):
    source, mirror, peer = pair
    with shmarray.Client(source.socket) as c:
        a = c.create("md/prices", (1000,), "float64", mode=0o644)
        last = 0
        for v in range(1, 6):
            a[:] = v * 1.5
            last = shmarray.publish(a)
        frame = pd.DataFrame({"price": [1.0, 2.0, 3.0, 4.0], "size": [1, 2, 3, 4]})
        c.put_frame("md/ticks", frame)
        out = run_python(CONSUMER, mirror.socket, str(last))
        assert out.returncode == 0, out.stderr
        first, second = out.stdout.splitlines()[:2]
        version, lo, hi, mirror_of = first.split()
        assert int(version) == last
        assert float(lo) == float(hi) == 7.5
        assert mirror_of == peer
        assert second == "[1.0, 2.0, 3.0] 10"
        with shmarray.Client(mirror.socket) as m:
            with pytest.raises(shmarray.PermissionDenied, match="mirror of"):
                m.open("md/prices", writable=True)
            info = m.stat("md/prices")
            assert info.mode == 0o444
            assert info.mirror["link"] == "up"
        del a


def test_open_frame_of_a_mirror_with_no_version_yet_says_so_or_waits(pair):
    source, mirror, peer = pair
    with shmarray.Client(source.socket) as c, shmarray.Client(mirror.socket) as m:
        df = c.create_frame("md/empty", {"price": "float64"}, 10, mode=0o644)
        assert shmarray.version(m.open("md/empty", wait=20)) == 0  # mirrored, no version yet
        with pytest.raises(shmarray.FailedPrecondition,
                           match=f"mirror of {peer} and has no version yet"):
            m.open_frame("md/empty")
        arr = df.attrs["shmarray"]
        arr["price"] = 2.5
        shmarray.publish(arr)
        got = m.open_frame("md/empty", wait=20)
        assert list(got["price"]) == [2.5] * 10
