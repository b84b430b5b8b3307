"""Cross-process visibility both ways, read-only enforcement, and lifetime of mappings."""

from __future__ import annotations

import gc
import signal

import numpy as np
import pytest

import shmarray
from conftest import require_helper, run_helper, run_python

WRITE_AND_PUBLISH = r"""
import sys
import shmarray
socket, name, index, value = sys.argv[1:5]
with shmarray.Client(socket) as c:
    a = c.open(name, writable=True)
a.reshape(-1)[int(index)] = float(value)
print(shmarray.publish(a))
"""

READ = r"""
import sys
import shmarray
socket, name, index = sys.argv[1:4]
with shmarray.Client(socket) as c:
    a = c.open(name)
print(repr(float(a.reshape(-1)[int(index)])))
"""


def test_child_writes_parent_sees(client, broker):
    a = client.create("vis/a", (64, 64))
    r = run_python(WRITE_AND_PUBLISH, broker.socket, "vis/a", "4095", "42.5")
    assert r.returncode == 0, r.stderr
    assert a[63, 63] == 42.5
    assert shmarray.version(a) == 1
    client.remove("vis/a")


def test_parent_writes_child_sees(client, broker):
    a = client.create("vis/b", 1000, "<f8")
    a[999] = -3.25
    r = run_python(READ, broker.socket, "vis/b", "999")
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) == -3.25
    client.remove("vis/b")


def test_cpp_helper_sees_python_writes_and_back(client, broker):
    require_helper()
    a = client.create("vis/c", 16, "<f8")
    a[5] = 7.0
    r = run_helper("expect", broker.socket, "vis/c", "5", "7")
    assert r.returncode == 0, r.stderr
    r = run_helper("write", broker.socket, "vis/c", "6", "8.5")
    assert r.returncode == 0, r.stderr
    assert a[6] == 8.5 and shmarray.version(a) == 1
    client.remove("vis/c")


def test_same_process_opens_share_pages(client):
    a = client.create("vis/d", 8, "<i8")
    b = client.open("vis/d", writable=True)
    r = client.open("vis/d")
    assert np.shares_memory(a, b) or a.ctypes.data == b.ctypes.data
    b[2] = 99
    assert a[2] == 99 and r[2] == 99
    client.remove("vis/d")


def test_read_only_array_cannot_be_written(client):
    a = client.create("ro/a", (4, 4))
    r = client.open("ro/a")
    assert not r.flags.writeable
    with pytest.raises(ValueError):
        r[0] = 1
    with pytest.raises(ValueError):
        r[1:, 2] += 1
    with pytest.raises(ValueError):
        r.flags.writeable = True  # the base (ArrayHandle) exports a read-only buffer
    with pytest.raises(shmarray.PermissionDenied):
        shmarray.publish(r)
    assert not r.base.writable
    # A writable grant can be toggled back after being made read-only by the user.
    a.flags.writeable = False
    a.flags.writeable = True
    a[0, 0] = 1.0
    assert r[0, 0] == 1.0
    client.remove("ro/a")


RO_RAW_WRITE = r"""
import ctypes, sys
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    a = c.open(name)
print("opened", flush=True)
ctypes.c_double.from_address(a.ctypes.data).value = 1.0   # past NumPy's check: the kernel decides
print("wrote", flush=True)
"""


def test_read_only_mapping_is_enforced_by_the_kernel(client, broker):
    a = client.create("ro/raw", 512)
    r = run_python(RO_RAW_WRITE, broker.socket, "ro/raw")
    assert r.returncode == -signal.SIGSEGV, (r.returncode, r.stdout, r.stderr)
    assert "opened" in r.stdout and "wrote" not in r.stdout
    assert a[0] == 0.0
    client.remove("ro/raw")


def test_cpp_read_only_write_dies_too(client, broker):
    require_helper()
    client.create("ro/cpp", 16)
    r = run_helper("write-ro", broker.socket, "ro/cpp")
    assert r.returncode == -signal.SIGSEGV, (r.returncode, r.stderr)
    client.remove("ro/cpp")


# --- lifetime ------------------------------------------------------------------------------------

def mapped_segments(array_id: str) -> list[str]:
    with open("/proc/self/maps") as f:
        return [line for line in f if array_id in line]


def test_views_outlive_client_name_and_broker(broker):
    c = shmarray.Client(broker.socket)
    a = c.create("life/a", (100, 100))
    a[:] = 1.5
    view = a[10:20, ::3].T
    ro = c.open("life/a")[50]
    array_id = a.base.info.id
    del a
    gc.collect()
    c.remove("life/a")          # the name goes at once...
    with pytest.raises(shmarray.NotFound):
        c.stat("life/a")
    c.close()                   # ...the connection too...
    broker.stop()               # ...and the broker
    assert broker.proc.returncode is not None
    assert view.sum() == 1.5 * view.size
    view[:] = 2.0               # still writable, still the same pages
    assert ro[0] == 1.5 and ro[3] == 1.5
    assert shmarray.publish(view) == 1 and shmarray.version(ro) == 1
    assert mapped_segments(array_id)
    del view, ro
    gc.collect()
    assert not mapped_segments(array_id), "the mapping goes with its last view"


def test_views_survive_broker_sigkill(broker):
    c = shmarray.Client(broker.socket)
    a = c.create("life/k", 1 << 16, "<u1")
    c.remove("life/k")
    broker.kill()
    a[:] = 7
    assert int(a.sum()) == 7 << 16
    with pytest.raises(shmarray.BrokerUnavailable):
        c.list()
    c.close()
    with pytest.raises(shmarray.BrokerUnavailable):
        shmarray.Client(broker.socket, timeout=2.0)


def test_closing_client_keeps_buffers_valid(client, broker):
    a = client.create("life/m", 1000, "<i4")
    m = memoryview(a)
    b = np.frombuffer(a.base, dtype="<i4")
    client.close()
    client.close()  # idempotent
    assert client.closed
    m[0] = 5        # no BufferError, no crash
    assert b[0] == 5 and a[0] == 5
    with pytest.raises(shmarray.FailedPrecondition):
        client.remove("life/m")
    with shmarray.Client(broker.socket) as c2:
        c2.remove("life/m")


def test_many_opens_and_drops_do_not_leak_mappings(client):
    a = client.create("life/n", 4096, "<u1")
    array_id = a.base.info.id
    for _ in range(200):
        v = client.open("life/n")
        assert v[0] == 0
    del v
    gc.collect()
    assert len(mapped_segments(array_id)) <= 2  # the writable one (+ one read-only at most)
    client.remove("life/n")
    del a
    gc.collect()
    assert not mapped_segments(array_id)


def test_zero_copy(client):
    a = client.create("zc/a", (256, 256), "<f4")
    assert not a.flags.owndata
    assert a.ctypes.data == a.base.address
    b = client.open("zc/a")
    assert a.ctypes.data == b.ctypes.data  # one mapping per process, shared by both grants
    client.remove("zc/a")
