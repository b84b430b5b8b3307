"""Ctrl-C interrupts every blocking call; negative waits are refused; create(populate=True).

Each blocking call runs in a child Python process that is sent SIGINT once it sleeps in that call;
the child must raise KeyboardInterrupt (not finish the call, not die) and say so well within a
generous bound (the calls themselves would block for a minute).
"""

from __future__ import annotations

import signal
import time

import numpy as np
import pytest

import shmarray
from conftest import wait_until_sleeping

# Generous for a loaded 2-vCPU machine; the calls below would otherwise block for 60 s.
INTERRUPT_BOUND_S = 5.0

BLOCKER = r"""
import sys, time
import shmarray
socket, name, call = sys.argv[1:4]
c = shmarray.Client(socket, timeout=60)
if call != "open_wait":
    a = c.open(name, writable=True)
print("ready", flush=True)
sys.stdin.readline()      # the parent prepares (holds the lock, stops the broker...), then says go
print("blocking", flush=True)
t0 = time.monotonic()
try:
    if call == "open_wait":
        c.open(name, wait=60)
    elif call == "subscribe_wait":
        c.subscribe(name + "-stream", wait=60)  # a stream nobody makes
    elif call == "wait":
        shmarray.wait(a, timeout=None)
    elif call == "lock":
        shmarray.lock(a, timeout=None)
    elif call == "read_consistent":
        shmarray.read_consistent(a, timeout=None)
    elif call == "read_checked":
        shmarray.read_checked(a, timeout=None)
    elif call == "broker_call":
        c.list()
    elif call == "connect":
        shmarray.Client(socket, timeout=60)
    print("returned", round(time.monotonic() - t0, 3), flush=True)
except KeyboardInterrupt:
    print("interrupted", round(time.monotonic() - t0, 3), flush=True)
"""

HOLDER = r"""
import sys
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    a = c.open(name, writable=True)
with shmarray.lock(a, timeout=10, seqlock=True):
    print("locked", flush=True)
    sys.stdin.readline()
"""


def interrupt(child) -> float:
    """Sends SIGINT once `child` sleeps in its call; returns seconds until it says so."""
    child.expect("blocking")
    assert wait_until_sleeping(child.proc.pid), "the child never went to sleep in the call"
    t0 = time.monotonic()
    child.proc.send_signal(signal.SIGINT)
    line = child.expect("interrupted", timeout=30)
    elapsed = time.monotonic() - t0
    assert child.finish() == 0
    print(f"{line}: {elapsed:.3f} s after SIGINT")
    return elapsed


@pytest.mark.parametrize(
    "call", ["open_wait", "subscribe_wait", "wait", "lock", "read_consistent", "read_checked"]
)
def test_ctrl_c_interrupts_blocking_call(client, broker, children, call):
    client.create("int/a", 4)
    holder = None
    if call in ("lock", "read_consistent", "read_checked"):
        # A writer in the middle of a seqlock write: lock blocks, consistent reads retry.
        holder = children(HOLDER, broker.socket, "int/a")
        holder.expect("locked")
    child = children(BLOCKER, broker.socket, "int/missing" if call == "open_wait" else "int/a",
                     call)
    child.expect("ready")
    child.send("go")
    assert interrupt(child) < INTERRUPT_BOUND_S
    if holder is not None:
        assert holder.finish() == 0
    client.remove("int/a")


@pytest.mark.parametrize("call", ["broker_call", "connect"])
def test_ctrl_c_interrupts_a_call_to_a_stopped_broker(broker_factory, children, call):
    stopped = broker_factory()
    with shmarray.Client(stopped.socket) as c:
        c.create("int/s", 1)
    child = children(BLOCKER, stopped.socket, "int/s", call)
    child.expect("ready")
    stopped.proc.send_signal(signal.SIGSTOP)
    try:
        child.send("go")
        assert interrupt(child) < INTERRUPT_BOUND_S
    finally:
        stopped.proc.send_signal(signal.SIGCONT)
    with shmarray.Client(stopped.socket) as c:
        # The interrupted connection left the broker serving others.
        c.remove("int/s")


def test_interrupted_client_stays_usable(client, broker):
    """An interrupt abandons the reply but keeps the connection: the next call works."""
    client.create("int/u", 3)
    with shmarray.Client(broker.socket) as c:
        import _thread
        import threading

        timer = threading.Timer(0.3, _thread.interrupt_main)
        timer.start()
        try:
            with pytest.raises(KeyboardInterrupt):
                c.open("int/never", wait=30)
        finally:
            timer.cancel()
        assert [i.name for i in c.list("int/")] == ["int/u"]
        assert c.open("int/u").shape == (3,)
    client.remove("int/u")


@pytest.mark.parametrize(
    "call, argument",
    [
        (lambda c, a: c.open("neg/a", wait=-1), "wait"),
        (lambda c, a: c.open("neg/a", wait=-0.001), "wait"),
        (lambda c, a: shmarray.wait(a, timeout=-1), "timeout"),
        (lambda c, a: shmarray.lock(a, timeout=-1), "timeout"),
        (lambda c, a: shmarray.read_consistent(a, timeout=-1), "timeout"),
        (lambda c, a: shmarray.read_checked(a, timeout=-2.5), "timeout"),
        (lambda c, a: shmarray.Client(c.socket_path, timeout=-1), "timeout"),
    ],
)
def test_negative_waits_are_a_value_error(client, call, argument):
    a = client.create("neg/a", 1)
    t0 = time.monotonic()
    with pytest.raises(ValueError) as info:
        call(client, a)
    assert time.monotonic() - t0 < 5
    assert not isinstance(info.value, shmarray.Error)  # a mistake in the call, caught before
    assert f"{argument} must be >= 0 seconds" in str(info.value)
    assert "got -" in str(info.value)
    client.remove("neg/a")


def resident_kib(address: int) -> int:
    """Rss of this process's mapping that starts at or contains `address` (/proc/self/smaps)."""
    with open("/proc/self/smaps") as f:
        inside = False
        for line in f:
            head = line.split()[0]
            if "-" in head and all(ch in "0123456789abcdef-" for ch in head):
                start, end = (int(x, 16) for x in head.split("-"))
                inside = start <= address < end
            elif inside and line.startswith("Rss:"):
                return int(line.split()[1])
    raise AssertionError(f"no mapping holds {address:#x}")


def test_create_populate_prefaults_the_creators_mapping(client):
    nbytes = 16 << 20
    lazy = client.create("pop/lazy", nbytes, "uint8")
    eager = client.create("pop/eager", nbytes, "uint8", populate=True)
    lazy_kib = resident_kib(lazy.base.address)
    eager_kib = resident_kib(eager.base.address)
    assert eager_kib >= nbytes // 1024, eager_kib
    assert lazy_kib < 1024, lazy_kib  # nothing touched yet: at most the header page
    # Pre-faulted pages are the shared ones: a reader sees writes as usual.
    eager[:] = 7
    assert int(client.open("pop/eager")[-1]) == 7
    assert np.all(eager == 7)
    del lazy, eager
    client.remove("pop/lazy")
    client.remove("pop/eager")


STREAM_BLOCKER = r"""
import sys, time
import numpy as np
import shmarray
socket, name, call = sys.argv[1:4]
c = shmarray.Client(socket, timeout=60)
pub = c.create_stream(name, slots=4, slot_bytes=64, overflow="block", ephemeral=True)
sub = c.subscribe(name, max_held=1)  # takes nothing: under "block" the ring fills up
for _ in range(10):
    try:
        pub.send(np.zeros(4), timeout=0)
    except shmarray.DeadlineExceeded:
        break
else:
    sys.exit("the ring never filled")
print("blocking", flush=True)
t0 = time.monotonic()
try:
    if call == "loan":
        with pub.loan((4,), "float64", timeout=60):
            pass
    elif call == "send":
        pub.send(np.zeros(4), timeout=60)
    elif call == "take":
        other = c.subscribe(name, max_held=1)  # at the head: nothing new arrives
        other.take(timeout=60)
    print("returned", round(time.monotonic() - t0, 3), flush=True)
except KeyboardInterrupt:
    print("interrupted", round(time.monotonic() - t0, 3), flush=True)
"""


@pytest.mark.parametrize("call", ["loan", "send", "take"])
def test_ctrl_c_interrupts_a_waiting_stream_call(broker, children, call):
    child = children(STREAM_BLOCKER, broker.socket, "int/stream-" + call, call)
    assert interrupt(child) < INTERRUPT_BOUND_S
