"""Segments resized by a writer (docs/security.md, "Sizes"): errors, never signals, in Python.

The attacker here is the test process itself (root, like the broker): it ftruncates the segment
through /dev/shm, as any process holding a read-write descriptor could.
"""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

import shmarray
from conftest import run_python


def segment_path(broker, info) -> str:
    return "/dev/shm/" + shmarray._segment_prefix(broker.socket).lstrip("/") + info.id


def resize(broker, info, size: int) -> None:
    os.truncate(segment_path(broker, info), size)


@pytest.mark.parametrize("size", [0, 4096])
def test_truncated_array_is_damaged_and_the_broker_keeps_serving(broker, client, size):
    client.create("victim", (1024,), mode=0o666)
    client.create("other", (16,))
    info = client.stat("victim")
    assert info.damaged is None
    resize(broker, info, size)

    client.chmod("victim", 0o644)  # used to kill the broker with SIGBUS
    st = client.stat("victim")
    assert st.mode == 0o644
    assert "a writer truncated the segment of array 'victim'" in st.damaged
    assert "damaged=True" in repr(st)
    assert [i.damaged is not None for i in client.list()] == [False, True]  # other, victim
    with pytest.raises(shmarray.DataLoss, match="truncated"):
        client.open("victim")
    with pytest.raises(shmarray.DataLoss):
        client.open("victim", writable=True)
    # Another process opening it gets the exception, not a signal.
    child = run_python(
        "import sys, shmarray\n"
        "c = shmarray.Client(sys.argv[1])\n"
        "try:\n"
        "    c.open('victim')\n"
        "except shmarray.DataLoss as e:\n"
        "    print('DataLoss', e)\n",
        broker.socket,
    )
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("DataLoss")
    assert client.open("other", writable=True).shape == (16,)
    assert broker.proc.poll() is None
    client.remove("victim")
    client.remove("other")


def test_read_checked_raises_data_loss_after_a_shrink_under_the_mapping(broker, client):
    arr = client.create("shrinks", (4, 512), dtype="uint64")
    arr[...] = np.arange(arr.size, dtype=np.uint64).reshape(arr.shape)
    shmarray.publish(arr)
    copy, version = shmarray.read_checked(arr)
    assert version == 1
    np.testing.assert_array_equal(copy, arr)
    view_copy, _ = shmarray.read_checked(arr[1:3, ::2])
    np.testing.assert_array_equal(view_copy, arr[1:3, ::2])
    info = client.stat("shrinks")
    for size in (4096, 0):
        resize(broker, info, size)
        # `arr` itself must not be indexed from here on: its pages are gone (SIGBUS).
        with pytest.raises(shmarray.DataLoss, match="'shrinks'"):
            shmarray.read_checked(arr)
    client.remove("shrinks")


def test_grown_segment_is_cut_back_and_stat_shows_the_recorded_size(broker, client):
    client.create("grows", (1024,))
    info = client.stat("grows")
    resize(broker, info, 1 << 30)
    st = client.stat("grows")
    assert st.segment_bytes == info.segment_bytes and st.damaged is None
    assert os.stat(segment_path(broker, info)).st_size == info.segment_bytes
    resize(broker, info, 1 << 30)
    arr = client.open("grows")  # cut back before the descriptor is sent: the open succeeds
    assert arr.shape == (1024,)
    assert os.stat(segment_path(broker, info)).st_size == info.segment_bytes
    client.remove("grows")
