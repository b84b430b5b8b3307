"""Every dtype NumPy can hold without Python objects (issue 14), between real processes.

For each direction (Python -> Python, C++ -> Python, Python -> C++) every kind below is created in
one process and opened in another: the dtype is np.dtype-equal, the bytes are equal (values
included: every element is compared byte for byte), a second open in the same process shares
memory with the first, and a write in the other process is seen after a publish. Byte patterns:
byte k = (31 k + seed) mod 256, the rule of the C++ helper's create-bytes/check-bytes.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

import shmarray
from conftest import require_helper, run_helper, run_python

UNITS = ["Y", "M", "W", "D", "h", "m", "s", "ms", "us", "ns", "ps", "fs", "as"]
NUMBERS = ["|b1", "|i1", "|u1"] + [
    f"{order}{kind}{size}"
    for kind, sizes in [("i", (2, 4, 8)), ("u", (2, 4, 8)), ("f", (2, 4, 8, 16)), ("c", (8, 16, 32))]
    for size in sizes
    for order in "<>"
]
DATETIMES = [f"{order}{kind}8[{unit}]" for kind in "Mm" for unit in UNITS for order in "<>"] + [
    "<M8", "<m8", "<M8[25s]", ">m8[3h]"]
FLEXIBLE = ["|S7", "<U5", ">U5", "|V6"]
STRUCTURED = [
    [("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("i", "<u2")],  # a point cloud record
    # nested, sub-arrays, big-endian and datetime fields, padding inside and at the end
    {"names": ["rgb", "p", "m", "tag"],
     "formats": [("u1", (3,)), [("x", ">f4"), ("t", "<M8[us]")], ("<f8", (2, 2)), "S3"],
     "offsets": [0, 4, 16, 50], "itemsize": 64},
    {"names": ["b", "a"], "formats": ["<i4", ("u1", (3,))], "offsets": [4, 0], "itemsize": 8},
    [("when", "<M8[ns]"), ("price", ">f8"), ("size", "<i8"), ("sym", "S8"), ("name", "<U4")],
]
ALL = NUMBERS + DATETIMES + FLEXIBLE + STRUCTURED
IDS = [str(np.dtype(d)) if not isinstance(d, str) else d for d in ALL]
N = 5


def pattern(nbytes: int, seed: int) -> bytes:
    return bytes((31 * k + seed) % 256 for k in range(nbytes))


def raw(a: np.ndarray) -> bytes:
    return a.view(np.uint8).tobytes()


CHILD = r"""
import json, sys
import numpy as np
import shmarray
socket, spec = sys.argv[1], json.loads(sys.argv[2])
def pattern(nbytes, seed):
    return bytes((31 * k + seed) % 256 for k in range(nbytes))
problems = []
with shmarray.Client(socket) as c:
    for name, dtype_repr, seed in spec:
        expected = eval(dtype_repr, {"dtype": np.dtype})
        a = c.open(name, writable=True)
        again = c.open(name)
        if a.dtype != expected:
            problems.append(f"{name}: dtype {a.dtype!r} != {expected!r}")
        if a.view(np.uint8).tobytes() != pattern(a.nbytes, seed):
            problems.append(f"{name}: bytes differ")
        if not np.shares_memory(a, again):
            problems.append(f"{name}: second open does not share memory")
        a.view(np.uint8)[:] = np.frombuffer(pattern(a.nbytes, seed + 1), np.uint8)
        shmarray.publish(a)
print(json.dumps(problems))
"""


def check_child(broker, spec) -> None:
    r = run_python(CHILD, broker.socket, json.dumps(spec))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == []


def test_every_kind_python_to_python(client, broker):
    arrays, spec = [], []
    for i, d in enumerate(ALL):
        dtype = np.dtype(d)
        a = client.create(f"k/{i}", N, dtype)
        assert a.dtype == dtype, IDS[i]
        a.view(np.uint8)[:] = np.frombuffer(pattern(a.nbytes, i), np.uint8)
        assert shmarray.publish(a) == 1
        assert client.stat(f"k/{i}").dtype == dtype
        arrays.append(a)
        spec.append((f"k/{i}", repr(dtype), i))
    check_child(broker, spec)
    for i, a in enumerate(arrays):
        assert shmarray.version(a) == 2, IDS[i]
        assert raw(a) == pattern(a.nbytes, i + 1), f"{IDS[i]}: the child's write is not visible"
        client.remove(f"k/{i}")


def test_every_kind_cpp_to_python_and_back(client, broker):
    require_helper()
    for i, d in enumerate(ALL):
        dtype = np.dtype(d)
        text = shmarray.dtype_text(dtype)
        r = run_helper("create-bytes", broker.socket, f"c/{i}", text, str(N), str(i))
        assert r.returncode == 0, f"{IDS[i]}: {r.stderr}"
        assert r.stdout.split() == ["created", text]
        a = client.open(f"c/{i}", writable=True)
        assert a.dtype == dtype, IDS[i]
        assert raw(a) == pattern(a.nbytes, i), IDS[i]
        assert np.shares_memory(a, client.open(f"c/{i}"))
        a.view(np.uint8)[:] = np.frombuffer(pattern(a.nbytes, i + 1), np.uint8)
        shmarray.publish(a)
        # The C++ process sees the Python write, and Python sees the C++ write.
        r = run_helper("check-bytes", broker.socket, f"c/{i}", text, str(i + 1))
        assert r.returncode == 0, f"{IDS[i]}: {r.stderr}"
        assert raw(a) == pattern(a.nbytes, i + 2), IDS[i]
        client.remove(f"c/{i}")


def test_every_kind_python_to_cpp(client, broker):
    require_helper()
    for i, d in enumerate(ALL):
        a = client.create(f"p/{i}", N, d)
        a.view(np.uint8)[:] = np.frombuffer(pattern(a.nbytes, i), np.uint8)
        r = run_helper("check-bytes", broker.socket, f"p/{i}", shmarray.dtype_text(d), str(i))
        assert r.returncode == 0, f"{IDS[i]}: {r.stderr}"
        assert raw(a) == pattern(a.nbytes, i + 1), IDS[i]
        client.remove(f"p/{i}")


POINT = np.dtype([("x", "<f4"), ("y", "<f4"), ("z", "<f4"), ("i", "<u2")], align=True)


def test_cpp_struct_view_of_a_python_record_array(client, broker):
    require_helper()
    assert POINT.itemsize == 16  # the C++ struct's size, padding included
    a = client.create("pts", 100, POINT)
    k = np.arange(100)
    a["x"], a["y"], a["z"], a["i"] = k, 2 * k, 3 * k, k
    r = run_helper("check-points", broker.socket, "pts")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok 100 points"
    client.remove("pts")


def test_python_reads_a_cpp_struct_array_as_records(client, broker):
    require_helper()
    r = run_helper("create-points", broker.socket, "pts", "50")
    assert r.returncode == 0, r.stderr
    a = client.open("pts")
    assert a.dtype == POINT
    k = np.arange(50)
    np.testing.assert_array_equal(a["x"], k.astype("f4"))
    np.testing.assert_array_equal(a["z"], (3 * k).astype("f4"))
    np.testing.assert_array_equal(a["i"], k.astype("u2"))
    client.remove("pts")


def test_values_of_common_kinds_compare_equal_across_processes(client, broker):
    """Values, not just bytes: timestamps, byte strings, unicode, big-endian floats."""
    cases = {
        "v/t": np.array(["2024-01-02T03:04:05.123456789", "NaT"], "<M8[ns]"),
        "v/d": np.array([1, -2], ">m8[ms]"),
        "v/s": np.array([b"ab", b"xyz\x00"], "|S4"),
        "v/u": np.array(["h\u00e9", "w\u00f6rld"], ">U5"),
        "v/f": np.array([1.5, -0.25], ">f8"),
        "v/l": np.array([1, 3], "<f16") / 7,
    }
    for name, values in cases.items():
        a = client.create(name, values.shape, values.dtype)
        a[:] = values
    code = "import sys, numpy as np, shmarray\n" \
           "with shmarray.Client(sys.argv[1]) as c:\n" \
           "    for n in sys.argv[2:]: print(n, repr(c.open(n).tolist()))\n"
    r = run_python(code, broker.socket, *cases)
    assert r.returncode == 0, r.stderr
    for line, (name, values) in zip(r.stdout.splitlines(), cases.items()):
        assert line == f"{name} {values.tolist()!r}"
        client.remove(name)


@pytest.mark.parametrize("dtype,says", [
    (object, "pointers to Python objects"),
    ([("a", "<f8"), ("o", "O")], "pointers to Python objects"),
    ([(("title", "a"), "<f8")], "title"),
    (np.dtype(("u1", (3,))), "sub-array dtype"),
    ({"names": ["a", "b"], "formats": ["<f8", "<f8"], "offsets": [0, 4], "itemsize": 16},
     "overlap"),
    ([("a" * 65, "<f8")], "names are 1-64 bytes"),
    ([(f"f{i}", "u1") for i in range(300)], "limit"),
])
def test_unshareable_dtypes_are_refused_saying_why(client, dtype, says):
    with pytest.raises(shmarray.InvalidArgument) as info:
        client.create("bad", 3, dtype)
    assert says in str(info.value)
    assert client.list() == []
