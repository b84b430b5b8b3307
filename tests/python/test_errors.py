"""Every shmarray error surfaces as the right shmarray.Error subclass (and builtin)."""

from __future__ import annotations

import os
import socket as pysocket
import threading
import time

import numpy as np
import pytest

import shmarray

HIERARCHY = {
    "InvalidArgument": ValueError,
    "NotFound": FileNotFoundError,
    "AlreadyExists": FileExistsError,
    "PermissionDenied": PermissionError,
    "ResourceExhausted": None,
    "BrokerUnavailable": ConnectionError,
    "DeadlineExceeded": TimeoutError,
    "ProtocolError": None,
    "FailedPrecondition": None,
    "InternalError": None,
    "Cancelled": None,
    "DataLoss": None,
}


@pytest.mark.parametrize("name,builtin", sorted(HIERARCHY.items()))
def test_hierarchy(name, builtin):
    cls = getattr(shmarray, name)
    assert issubclass(cls, shmarray.Error) and issubclass(shmarray.Error, Exception)
    if builtin is not None:
        assert issubclass(cls, builtin)
    assert cls.__module__ == "shmarray"
    assert cls.__doc__


def test_not_found(client):
    for call in (lambda: client.open("nope"), lambda: client.stat("nope"),
                 lambda: client.remove("nope")):
        with pytest.raises(shmarray.NotFound) as info:
            call()
        assert isinstance(info.value, FileNotFoundError)
        assert info.value.code == "NotFound"
        assert "nope" in str(info.value)


def test_already_exists(client):
    client.create("err/x", 3)
    with pytest.raises(FileExistsError) as info:
        client.create("err/x", 3)
    assert type(info.value) is shmarray.AlreadyExists and info.value.code == "AlreadyExists"
    client.remove("err/x")


@pytest.mark.parametrize("kwargs", [
    dict(name="bad name", shape=3),
    dict(name="/abs", shape=3),
    dict(name="a//b", shape=3),
    dict(name="", shape=3),
    dict(name="x" * 300, shape=3),
    dict(name="ok", shape=3, dtype=object),
    dict(name="ok", shape=3, dtype=[("a", "<f8"), ("b", "O")]),
    dict(name="ok", shape=3, dtype="S0"),
    dict(name="ok", shape=tuple([1] * 33)),
])
def test_invalid_argument(client, kwargs):
    with pytest.raises(shmarray.InvalidArgument) as info:
        client.create(**kwargs)
    assert isinstance(info.value, ValueError) and info.value.code == "InvalidArgument"
    assert client.list() == []


def test_bad_python_arguments_are_plain_python_errors(client):
    with pytest.raises(ValueError):
        client.create("x", -1)
    with pytest.raises(ValueError):
        client.create("x", 3, order="K")
    with pytest.raises(TypeError):
        client.create("x", "3")
    with pytest.raises(TypeError):
        client.create("x", 3.5)
    with pytest.raises(TypeError):
        client.create("x", 3, dtype="no-such-dtype")
    with pytest.raises(TypeError):
        shmarray.version(np.zeros(3))
    with pytest.raises(TypeError):
        shmarray.publish([1, 2])
    with pytest.raises(ValueError):
        shmarray.wait(client.create("x", 1), timeout=float("nan"))
    client.remove("x")


def test_permission_denied_on_read_only_grant(client):
    client.create("perm/a", 4)
    r = client.open("perm/a")
    for call in (lambda: shmarray.publish(r), lambda: shmarray.lock(r, timeout=0),
                 lambda: shmarray.lock(r[1:], timeout=0)):
        with pytest.raises(PermissionError) as info:
            call()
        assert type(info.value) is shmarray.PermissionDenied
    client.remove("perm/a")


def test_broker_unavailable(tmpdir_short):
    path = str(tmpdir_short / "none.sock")
    with pytest.raises(ConnectionError) as info:
        shmarray.Client(path)
    assert type(info.value) is shmarray.BrokerUnavailable
    assert info.value.code == "Unavailable"
    assert path in str(info.value) and "shmarrayd" in str(info.value)
    assert info.value.errno == info.value.sys_errno != 0


def test_default_socket_path_rule(monkeypatch, broker):
    monkeypatch.setenv("SHMARRAY_SYSTEM_SOCKET", "/nonexistent/shmarray.sock")  # no system broker
    monkeypatch.setenv("SHMARRAY_SOCKET", broker.socket)
    assert shmarray.default_socket_path() == broker.socket
    with shmarray.Client() as c:
        assert c.socket_path == broker.socket
    monkeypatch.delenv("SHMARRAY_SOCKET")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/12345")
    assert shmarray.default_socket_path() == "/run/user/12345/shmarray.sock"
    monkeypatch.delenv("XDG_RUNTIME_DIR")
    assert shmarray.default_socket_path() == f"/tmp/shmarray-{os.getuid()}/shmarray.sock"


def test_clients_given_no_socket_find_the_system_broker(monkeypatch, broker, tmp_path):
    """docs/operations.md: with no $SHMARRAY_SOCKET and no socket of your own, Client() uses the
    system broker's socket if it exists (here a stand-in: $SHMARRAY_SYSTEM_SOCKET)."""
    monkeypatch.delenv("SHMARRAY_SOCKET", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))  # no broker of this user there
    monkeypatch.setenv("SHMARRAY_SYSTEM_SOCKET", broker.socket)
    assert shmarray.system_socket_path() == broker.socket
    assert shmarray.default_socket_path() == broker.socket
    with shmarray.Client() as c:
        assert c.socket_path == broker.socket
        c.create("sys/py", 2)
        assert [info.name for info in c.list()] == ["sys/py"]
        c.remove("sys/py")
    own = tmp_path / "shmarray.sock"
    stale = pysocket.socket(pysocket.AF_UNIX)
    stale.bind(str(own))  # the user's own socket, even a stale one, comes first
    stale.close()
    assert shmarray.default_socket_path() == str(own)
    with pytest.raises(shmarray.BrokerUnavailable, match="the system broker at " + broker.socket):
        shmarray.Client()
    monkeypatch.delenv("SHMARRAY_SYSTEM_SOCKET")
    assert shmarray.system_socket_path() == "/run/shmarray/shmarray.sock"


def test_client_accepts_pathlike(broker):
    from pathlib import Path
    with shmarray.Client(Path(broker.socket)) as c:
        assert c.socket_path == broker.socket
        assert c.broker_pid == broker.proc.pid
        assert c.protocol_version >= 1
        assert "closed" not in repr(c)
    assert "closed" in repr(c)


def test_closed_client_is_failed_precondition(client):
    client.close()
    with pytest.raises(shmarray.FailedPrecondition):
        client.list()


def test_deadline_exceeded_on_open_wait(client):
    t0 = time.monotonic()
    with pytest.raises(TimeoutError) as info:
        client.open("later/x", wait=0.3)
    assert type(info.value) is shmarray.DeadlineExceeded
    assert 0.25 <= time.monotonic() - t0 < 5.0


def test_open_wait_sees_a_later_create(client, broker):
    def create_soon():
        time.sleep(0.2)
        with shmarray.Client(broker.socket) as c:
            c.create("later/y", 3)
    t = threading.Thread(target=create_soon)
    t.start()
    a = client.open("later/y", wait=10.0)
    t.join(timeout=10)
    assert a.shape == (3,)
    client.remove("later/y")


def test_resource_exhausted(broker_factory):
    b = broker_factory("--max-arrays", "1")
    with shmarray.Client(b.socket) as c:
        c.create("one", 1)
        with pytest.raises(shmarray.ResourceExhausted) as info:
            c.create("two", 1)
        assert info.value.code == "ResourceExhausted"
        c.remove("one")
    b2 = broker_factory("--max-bytes", str(1 << 20))
    with shmarray.Client(b2.socket) as c:
        with pytest.raises(shmarray.ResourceExhausted):
            c.create("big", 1 << 21, "<u1")


def test_protocol_error_from_a_broker_that_speaks_garbage(tmpdir_short):
    path = str(tmpdir_short / "junk.sock")
    server = pysocket.socket(pysocket.AF_UNIX, pysocket.SOCK_STREAM)
    server.bind(path)
    server.listen(1)
    server.settimeout(10)

    def serve():
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(4096)
                conn.sendall(b"\xde\xad\xbe\xef" * 16)
                time.sleep(0.5)
            except OSError:
                pass

    t = threading.Thread(target=serve)
    t.start()
    try:
        with pytest.raises(shmarray.ProtocolError) as info:
            shmarray.Client(path, timeout=5.0)
        assert info.value.code == "ProtocolError"
    finally:
        t.join(timeout=10)
        server.close()


def test_every_error_code_has_a_class():
    # The C++ enum's names (error.hpp) without the 'k'; kUnavailable is BrokerUnavailable and
    # kInternal InternalError in Python.
    names = {"InvalidArgument", "NotFound", "AlreadyExists", "PermissionDenied",
             "ResourceExhausted", "BrokerUnavailable", "DeadlineExceeded", "ProtocolError",
             "FailedPrecondition", "InternalError", "Cancelled", "DataLoss"}
    assert names <= set(dir(shmarray))
