"""pandas over shared arrays: zero copy, live updates from another process, and where it copies."""

from __future__ import annotations

import numpy as np
import pytest

import shmarray
from conftest import run_python

pd = pytest.importorskip("pandas")

WRITER = r"""
import sys
import numpy as np
import shmarray
socket, name, value = sys.argv[1:4]
with shmarray.Client(socket) as c:
    a = c.open(name, writable=True)
a[:, 1] = float(value)            # a whole column, in place
print(shmarray.publish(a))
"""


@pytest.mark.parametrize("order", ["C", "F"])
def test_dataframe_shares_memory_and_sees_other_process(client, broker, order):
    a = client.create("pd/m", (100, 4), "<f8", order)
    a[:] = np.arange(400, dtype="<f8").reshape(100, 4)
    df = pd.DataFrame(a, copy=False, columns=list("wxyz"))
    assert np.shares_memory(df.to_numpy(), a)
    assert np.shares_memory(df["x"].to_numpy(), a)
    assert df["x"].sum() == a[:, 1].sum()

    r = run_python(WRITER, broker.socket, "pd/m", "2.5")
    assert r.returncode == 0, r.stderr
    assert shmarray.version(a) == 1
    # The same DataFrame object, no re-read: the other process's writes are just there.
    assert (df["x"] == 2.5).all()
    assert df["x"].sum() == 250.0
    assert df.iloc[7, 1] == 2.5
    client.remove("pd/m")


def test_dataframe_over_read_only_array(client, broker):
    w = client.create("pd/ro", (10, 3), "<i4")
    r = client.open("pd/ro")
    df = pd.DataFrame(r, copy=False)
    assert np.shares_memory(df.to_numpy(), r)
    w[:] = 9
    assert (df == 9).all().all()
    with pytest.raises(ValueError):
        df.iloc[0, 0] = 1  # the read-only view stays read-only through pandas
    client.remove("pd/ro")


def test_writes_through_dataframe_reach_other_processes(client, broker):
    a = client.create("pd/w", (5, 2))
    df = pd.DataFrame(a, copy=False)
    df.iloc[3, 1] = 11.0  # pandas 1.x/2.x without Copy-on-Write writes in place
    if not np.shares_memory(df.to_numpy(), a):
        pytest.skip("this pandas copies on write (Copy-on-Write mode)")
    r = run_python(
        "import sys, shmarray\n"
        "with shmarray.Client(sys.argv[1]) as c: a = c.open('pd/w')\n"
        "print(a[3, 1])\n", broker.socket)
    assert r.returncode == 0, r.stderr
    assert float(r.stdout) == 11.0
    client.remove("pd/w")


def test_series_over_1d_array(client):
    a = client.create("pd/s", 50, "<f4")
    s = pd.Series(a, copy=False)
    assert np.shares_memory(s.to_numpy(), a)
    a[10] = 3.0
    assert s[10] == 3.0
    client.remove("pd/s")


def test_where_pandas_copies(client):
    """The documented copying cases (docs/python.md), so the doc stays true for this pandas."""
    a = client.create("pd/c", (6, 3), "<f8")
    df = pd.DataFrame(a, copy=False)
    # Views: row slices and transposes keep sharing.
    assert np.shares_memory(df.iloc[1:4].to_numpy(), a)
    assert np.shares_memory(df.T.to_numpy(), a)
    # Copies: dtype changes, column selection by list, and a dict of 1-D arrays by default.
    assert not np.shares_memory(df.astype("float32").to_numpy(), a)
    assert not np.shares_memory(df[[0, 2]].to_numpy(), a)
    assert not np.shares_memory(pd.DataFrame({"x": a[:, 0]})["x"].to_numpy(), a)
    assert np.shares_memory(pd.DataFrame({"x": a[:, 0]}, copy=False)["x"].to_numpy(), a)
    # Adding a column makes a second block; consolidating the blocks copies the shared one.
    df["new"] = 1.0
    assert np.shares_memory(df[0].to_numpy(), a)
    df._consolidate_inplace()
    assert not np.shares_memory(df[0].to_numpy(), a)
    client.remove("pd/c")
