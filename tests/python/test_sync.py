"""publish / wait / lock / read_consistent across processes (Python and the C++ helper)."""

from __future__ import annotations

import signal
import threading
import time

import numpy as np
import pytest

import shmarray
from conftest import HELPER, require_helper, wait_until_sleeping

WAITER = r"""
import sys
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    a = c.open(name, writable=True)
print("ready", shmarray.version(a), flush=True)
v = shmarray.wait(a, newer_than=0, timeout=20)
print("saw", v, a[0], flush=True)
a[1] = a[0] * 2
print("published", shmarray.publish(a), flush=True)
"""


def test_publish_wakes_waiter_in_other_process_and_back(client, broker, children):
    a = client.create("sync/a", 4)
    child = children(WAITER, broker.socket, "sync/a")
    assert child.expect("ready") == "ready 0"
    assert wait_until_sleeping(child.proc.pid), "the child never went to sleep in the futex"
    a[0] = 21.0
    assert shmarray.publish(a) == 1
    assert child.expect("saw") == "saw 1 21.0"
    assert shmarray.wait(a, newer_than=1, timeout=20) == 2
    assert a[1] == 42.0
    assert child.finish() == 0
    client.remove("sync/a")


def test_wait_returns_at_once_when_already_newer(client):
    a = client.create("sync/b", 1)
    shmarray.publish(a)
    shmarray.publish(a)
    assert shmarray.wait(a, newer_than=0, timeout=0) == 2
    assert shmarray.version(a[0:]) == 2
    client.remove("sync/b")


def test_wait_timeout(client):
    client.create("sync/c", 1)
    r = client.open("sync/c")
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        shmarray.wait(r, timeout=0.3)  # newer_than defaults to the current version
    elapsed = time.monotonic() - t0
    assert type(info.value) is shmarray.DeadlineExceeded
    assert 0.28 <= elapsed < 5.0  # a deadline kept, with a margin for sanitizers on 2 vCPUs
    assert "sync/c" in str(info.value)
    with pytest.raises(shmarray.DeadlineExceeded):
        shmarray.wait(r, newer_than=0, timeout=0)
    client.remove("sync/c")


def test_wait_releases_the_gil(client):
    a = client.create("sync/gil", 1)
    result = {}

    def waiter():
        result["v"] = shmarray.wait(a, newer_than=0, timeout=20)

    t = threading.Thread(target=waiter)
    t.start()
    # Pure-Python work in this thread makes progress while the other one waits.
    n, deadline = 0, time.monotonic() + 0.3
    while time.monotonic() < deadline:
        n += 1
    assert n > 1000
    shmarray.publish(a)
    t.join(timeout=20)
    assert result["v"] == 1
    client.remove("sync/gil")


INTERRUPTED = r"""
import sys
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    a = c.open(name)
print("waiting", flush=True)
try:
    shmarray.wait(a, timeout=None)
except KeyboardInterrupt:
    print("interrupted", flush=True)
"""


def test_ctrl_c_interrupts_wait(client, broker, children):
    client.create("sync/int", 1)
    child = children(INTERRUPTED, broker.socket, "sync/int")
    child.expect("waiting")
    assert wait_until_sleeping(child.proc.pid), "the child never went to sleep in wait()"
    child.proc.send_signal(signal.SIGINT)
    child.expect("interrupted", timeout=5)
    assert child.finish() == 0
    client.remove("sync/int")


LOCK_HOLDER = r"""
import sys
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    a = c.open(name, writable=True)
with shmarray.lock(a, timeout=10) as l:
    a[0] = 1.0
    print("locked", l.previous_owner_died, flush=True)
    sys.stdin.readline()          # hold until the parent says so
    shmarray.publish(a)
print("released", flush=True)
"""


def test_lock_excludes_other_process(client, broker, children):
    a = client.create("lock/a", 2)
    child = children(LOCK_HOLDER, broker.socket, "lock/a")
    assert child.expect("locked") == "locked False"
    t0 = time.monotonic()
    with pytest.raises(TimeoutError):
        shmarray.lock(a, timeout=0.2)
    assert time.monotonic() - t0 >= 0.18
    with pytest.raises(shmarray.DeadlineExceeded):
        shmarray.lock(a, timeout=0)
    child.send("go")
    with shmarray.lock(a, timeout=20) as l:
        assert l.held and not l.previous_owner_died
        assert shmarray.version(a) == 1 and a[0] == 1.0
    assert not l.held
    child.expect("released")
    assert child.finish() == 0
    client.remove("lock/a")


DIE_HOLDING = r"""
import os, sys
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    a = c.open(name, writable=True)
l = shmarray.lock(a, timeout=10)
a[:2] = 5.0                       # half an update...
print("locked", flush=True)
os._exit(3)                       # ...and die holding the lock
"""


def test_previous_owner_died(client, broker, children):
    a = client.create("lock/died", 4)
    child = children(DIE_HOLDING, broker.socket, "lock/died")
    child.expect("locked")
    assert child.finish() == 3
    with shmarray.lock(a, timeout=10) as l:
        assert l.previous_owner_died
        assert shmarray.possibly_torn(a)
        a[:] = 6.0
        shmarray.publish(a)
    assert not shmarray.possibly_torn(a)
    with shmarray.lock(a, timeout=1) as l2:
        assert not l2.previous_owner_died
    client.remove("lock/died")


def test_previous_owner_died_cpp_helper_sigkill(client, broker, children):
    require_helper()
    a = client.create("lock/kill", 1024, "<u1")
    child = children.argv([str(HELPER), "lock-and-hang", broker.socket, "lock/kill"])
    child.expect("locked")
    child.proc.send_signal(signal.SIGKILL)
    child.proc.wait(timeout=10)
    with shmarray.lock(a, timeout=10) as l:
        assert l.previous_owner_died
        assert a[0] == 0x5A
    client.remove("lock/kill")


def test_lock_same_thread_twice_and_reacquire(client):
    a = client.create("lock/twice", 1)
    l = shmarray.lock(a, timeout=1)
    with pytest.raises(shmarray.FailedPrecondition):
        shmarray.lock(a, timeout=1)
    assert l.release() is None
    l.release()  # no-op
    l.acquire(timeout=1)
    assert l.held
    with pytest.raises(shmarray.FailedPrecondition):
        l.acquire(timeout=0)
    l.release()
    assert l.array is a.base
    client.remove("lock/twice")


def test_lock_keeps_mapping_alive(client):
    a = client.create("lock/alive", 8)
    l = shmarray.lock(a[2:], timeout=1)
    client.remove("lock/alive")
    del a
    l.release()  # the lock word is still mapped: no crash
    l.acquire(timeout=1)
    l.release()


def test_seqlock_lock_publishes_and_read_consistent(client):
    a = client.create("seq/a", (4, 4), "<u8")
    with shmarray.lock(a, timeout=1, seqlock=True):
        a[:] = 7
    assert shmarray.version(a) == 1
    copy, v = shmarray.read_consistent(a[1:, ::2], timeout=1)
    assert v == 1 and copy.shape == (3, 2) and (copy == 7).all()
    assert not np.shares_memory(copy, a)
    with pytest.raises(RuntimeError):
        with shmarray.lock(a, timeout=1, seqlock=True):
            a[:] = 8
            raise RuntimeError("abandoned write")
    assert shmarray.version(a) == 1, "an abandoned write does not publish"
    # Half of the 8s landed under version 1: the array says so instead of returning them as clean.
    assert shmarray.possibly_torn(a)
    with pytest.raises(shmarray.DataLoss, match="next publish"):
        shmarray.read_consistent(a, timeout=0.2)
    l = shmarray.lock(a, timeout=1, seqlock=True)
    a[:] = 9
    assert l.release() == 2
    assert not shmarray.possibly_torn(a)
    copy, v = shmarray.read_consistent(a, timeout=1)
    assert v == 2 and (copy == 9).all()
    client.remove("seq/a")


def test_lock_released_from_another_thread_is_refused_and_stays_held(client):
    a = client.create("lock/thread", 4)
    l = shmarray.lock(a, timeout=1)
    errors = []

    def other():
        try:
            l.release()
        except shmarray.Error as e:  # noqa: PERF203
            errors.append(e)

    t = threading.Thread(target=other)
    t.start()
    t.join(timeout=10)
    assert len(errors) == 1 and isinstance(errors[0], shmarray.FailedPrecondition)
    assert "acquiring thread" in str(errors[0])
    assert l.held
    seen = []

    def try_lock():
        try:
            shmarray.lock(a, timeout=0)
        except shmarray.Error as e:  # noqa: PERF203
            seen.append(e)

    t = threading.Thread(target=try_lock)
    t.start()
    t.join(timeout=10)
    assert len(seen) == 1 and isinstance(seen[0], shmarray.DeadlineExceeded), "still held"
    l.release()
    client.remove("lock/thread")


def test_lock_collected_on_another_thread_is_released(client, capfd):
    a = client.create("lock/gc", 4)
    box = [shmarray.lock(a, timeout=1)]

    def drop():
        box.clear()  # the last reference goes away on this thread

    t = threading.Thread(target=drop)
    t.start()
    t.join(timeout=10)
    with shmarray.lock(a, timeout=1) as l2:  # free again: nobody waits for a lost lock
        assert not l2.previous_owner_died
    assert "destroyed on thread" in capfd.readouterr().err
    client.remove("lock/gc")


SEQ_WRITER = r"""
import sys, time
import shmarray
socket, name, ms = sys.argv[1:4]
with shmarray.Client(socket) as c:
    a = c.open(name, writable=True)
print("start", flush=True)
n, until = 0, time.monotonic() + int(ms) / 1000
while time.monotonic() < until:
    with shmarray.lock(a, timeout=5, seqlock=True):
        a[:] = shmarray.version(a) + 1
    n += 1
print("writes", n, flush=True)
"""


def test_read_consistent_never_sees_a_torn_python_write(client, broker, children):
    client.create("seq/b", 64 * 1024, "<u8")
    child = children(SEQ_WRITER, broker.socket, "seq/b", "800")
    child.expect("start")
    r = client.open("seq/b")
    reads, deadline = 0, time.monotonic() + 0.6
    while time.monotonic() < deadline:
        copy, v = shmarray.read_consistent(r, timeout=5)
        assert (copy == copy[0]).all(), "torn copy"
        assert copy[0] == v
        reads += 1
    child.expect("writes")
    assert child.finish() == 0
    assert reads > 0
    client.remove("seq/b")


def test_read_consistent_against_cpp_writer(client, broker, children):
    require_helper()
    client.create("seq/c", 16 * 1024, "<u8")
    child = children.argv([str(HELPER), "seq-writer", broker.socket, "seq/c", "600"])
    r = client.open("seq/c")
    deadline = time.monotonic() + 0.5
    while time.monotonic() < deadline:
        copy, v = shmarray.read_consistent(r, timeout=5)
        assert (copy == copy[0]).all() and copy[0] == v
    assert child.finish() == 0, child.stderr()
    client.remove("seq/c")


def test_pingpong_with_cpp_helper(client, broker, children):
    require_helper()
    a = client.create("pp/a", 1)
    rounds = 50
    child = children.argv([str(HELPER), "pingpong", broker.socket, "pp/a", str(rounds), "odd"])
    # The helper ("odd") publishes 1, 3, 5, ...; this side ("even") answers 2, 4, ...
    expected = 1
    for _ in range(rounds):
        assert shmarray.wait(a, newer_than=expected - 1, timeout=10) == expected
        assert shmarray.publish(a) == expected + 1
        expected += 2
    assert child.finish() == 0, child.stderr()
    client.remove("pp/a")
