"""Every supported dtype and both orders round-trip between processes: values, strides, metadata."""

from __future__ import annotations

import json

import numpy as np
import pytest

import shmarray
from conftest import require_helper, run_helper, run_python

DTYPES = ["<f2", "<f4", "<f8", "|i1", "<i2", "<i4", "<i8", "|u1", "<u2", "<u4", "<u8", "|b1",
          "<c8", "<c16"]
ORDERS = ["C", "F"]
SHAPE = (3, 5, 7)


def pattern(dtype: np.dtype, n: int) -> np.ndarray:
    """Element k (in memory order) of the test pattern: the same rule as the C++ test helper's
    create-iota/check-iota (k % 100; bool: k odd; float16: k % 2048; uint16: k, because the helper
    shares its uint16 branch with float16's raw bits)."""
    k = np.arange(n)
    if dtype.kind == "b":
        return k % 2 == 1
    if dtype == np.float16:
        return (k % 2048).astype(dtype)
    if dtype == np.uint16:
        return k.astype(dtype)
    return (k % 100).astype(dtype)


def memory_order_view(arr: np.ndarray) -> np.ndarray:
    """A 1-D view of a contiguous array's elements in memory order."""
    flat = arr.reshape(-1, order="F" if arr.flags.f_contiguous and not arr.flags.c_contiguous else "C")
    assert np.shares_memory(flat, arr)
    return flat


def expected_strides(shape, itemsize, order):
    return np.empty(shape, dtype=f"V{itemsize}", order=order).strides


CHILD_CHECK = r"""
import json, sys
import numpy as np
import shmarray
socket, name = sys.argv[1:3]
with shmarray.Client(socket) as c:
    a = c.open(name)
flat = a.reshape(-1, order="F" if a.flags.f_contiguous and not a.flags.c_contiguous else "C")
print(json.dumps({"dtype": a.dtype.str, "shape": a.shape, "strides": a.strides,
                  "f": bool(a.flags.f_contiguous), "c": bool(a.flags.c_contiguous),
                  "writeable": bool(a.flags.writeable),
                  "values": flat.view(np.uint8).tolist(),
                  "version": shmarray.version(a)}))
"""


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("typestr", DTYPES)
def test_python_creates_python_child_reads(client, broker, typestr, order):
    dtype = np.dtype(typestr)
    a = client.create("rt/a", SHAPE, typestr, order)
    assert a.dtype == dtype and a.shape == SHAPE
    assert a.strides == expected_strides(SHAPE, dtype.itemsize, order)
    assert (a.flags.f_contiguous if order == "F" else a.flags.c_contiguous)
    assert not a.any(), "a new array is zero-filled"
    memory_order_view(a)[:] = pattern(dtype, a.size)
    shmarray.publish(a)

    r = run_python(CHILD_CHECK, broker.socket, "rt/a")
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert got["dtype"] == dtype.str
    assert tuple(got["shape"]) == SHAPE
    assert tuple(got["strides"]) == a.strides
    assert got["f" if order == "F" else "c"]
    assert got["writeable"] is False
    assert got["version"] == 1
    assert bytes(got["values"]) == memory_order_view(a).tobytes()
    client.remove("rt/a")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("typestr", DTYPES)
def test_python_creates_cpp_helper_checks(client, broker, typestr, order):
    require_helper()
    dtype = np.dtype(typestr)
    a = client.create("rt/py", SHAPE, dtype, order)
    memory_order_view(a)[:] = pattern(dtype, a.size)
    r = run_helper("check-iota", broker.socket, "rt/py")
    assert r.returncode == 0, r.stderr
    client.remove("rt/py")


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("typestr", DTYPES)
def test_cpp_helper_creates_python_checks(client, broker, typestr, order):
    require_helper()
    r = run_helper("create-iota", broker.socket, "rt/cpp", typestr, order,
                   ",".join(map(str, SHAPE)))
    assert r.returncode == 0, r.stderr
    dtype = np.dtype(typestr)
    a = client.open("rt/cpp")
    assert a.dtype == dtype and a.shape == SHAPE
    assert a.strides == expected_strides(SHAPE, dtype.itemsize, order)
    assert shmarray.version(a) == 1
    np.testing.assert_array_equal(memory_order_view(a), pattern(dtype, a.size))
    client.remove("rt/cpp")


@pytest.mark.parametrize("dtype_like,typestr", [
    ("float64", "<f8"), (np.float32, "<f4"), (float, "<f8"), (int, "<i8"), (bool, "|b1"),
    ("u1", "|u1"), (np.dtype("complex64"), "<c8"), ("=f2", "<f2"), ("i2", "<i2"),
])
def test_dtype_accepts_what_numpy_accepts(client, dtype_like, typestr):
    a = client.create("dt/x", 4, dtype_like)
    assert a.dtype.str == typestr
    assert client.stat("dt/x").typestr == typestr
    client.remove("dt/x")


@pytest.mark.parametrize("shape", [7, (7,), [2, 3], (1, 1, 1, 1), np.int64(5), (0,), (3, 0)])
def test_shape_forms(client, shape):
    a = client.create("sh/x", shape)
    want = (int(shape),) if np.ndim(shape) == 0 else tuple(int(s) for s in shape)
    assert a.shape == want
    assert client.stat("sh/x").shape == want
    client.remove("sh/x")


def test_array_info_fields(client, broker):
    import os
    a = client.create("info/m", (4, 6), "<i4", "F", mode=0o640)
    shmarray.publish(a)
    for info in (client.stat("info/m"), client.list("info/")[0], a.base.info):
        assert isinstance(info, shmarray.ArrayInfo)
        assert info.name == "info/m"
        assert info.dtype == np.dtype("<i4") and info.typestr == "<i4"
        assert info.shape == (4, 6) and info.strides == (4, 16) and info.order == "F"
        assert info.ndim == 2 and info.itemsize == 4 and info.nbytes == 96
        assert info.owner_uid == os.getuid()
        assert info.mode == 0o640
        assert info.version == 1
        assert len(info.id) == 32
        assert info.segment_bytes >= info.data_offset + info.nbytes
        assert "info/m" in repr(info)
    assert client.stat("info/m").open_handles >= 1
    assert [i.name for i in client.list()] == ["info/m"]
    assert client.list("nothing/") == []
    client.remove("info/m")
    assert client.list() == []


def test_handle_and_buffer(client):
    a = client.create("buf/a", 10, "<u2")
    h = a.base
    assert isinstance(h, shmarray.ArrayHandle)
    assert h.name == "buf/a" and h.writable and h.nbytes == 20
    assert h.address == a.ctypes.data
    m = memoryview(h)
    assert m.nbytes == 20 and not m.readonly
    a[3] = 0xABCD
    assert np.frombuffer(h, dtype="<u2")[3] == 0xABCD
    r = client.open("buf/a")
    assert memoryview(r.base).readonly
    client.remove("buf/a")
