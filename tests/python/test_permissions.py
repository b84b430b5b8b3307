"""Client.chmod from Python: the mode changes what later opens may do, and only the owner (or
root) may change it. The other-user case runs a child interpreter as the unprivileged test user
that the C++ security tests create (shmarray-test-b); without root it is skipped."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

import shmarray
from conftest import CHILD_TIMEOUT_S

TEST_USER = "shmarray-test-b"

# Runs as TEST_USER: one operation on the array, prints "ok" or the exception's class name.
AS_OTHER_USER = """
import sys, shmarray
sock, name, op = sys.argv[1:4]
try:
    with shmarray.Client(sock) as c:
        if op == "open-ro":
            c.open(name)
        elif op == "open-rw":
            c.open(name, writable=True)
        elif op == "chmod":
            c.chmod(name, 0o666)
        elif op == "stat":
            c.stat(name)
    print("ok")
except shmarray.Error as e:
    print(type(e).__name__)
"""


def test_chmod_changes_the_mode_and_checks_its_arguments(client):
    client.create("perm/x", (4,), "int32", mode=0o600)
    assert client.stat("perm/x").mode == 0o600
    client.chmod("perm/x", 0o640)
    assert client.stat("perm/x").mode == 0o640
    assert client.list("perm/")[0].mode == 0o640
    with pytest.raises(shmarray.InvalidArgument, match="0777"):
        client.chmod("perm/x", 0o1777)
    with pytest.raises(shmarray.NotFound):
        client.chmod("perm/none", 0o600)
    with pytest.raises(shmarray.InvalidArgument):
        client.chmod("../x", 0o600)
    assert client.stat("perm/x").mode == 0o640
    client.remove("perm/x")


def _other_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a client as another user")
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pytest.skip(f"user {TEST_USER} does not exist (the C++ security tests create it)")


def test_mode_decides_what_another_user_may_do(broker_factory, tmpdir_short, shared_build):
    user = _other_user()
    directory = Path(tempfile.mkdtemp(prefix="b", dir=tmpdir_short))
    # The other user must reach the socket: traversable directories, a 0666 socket.
    for d in (tmpdir_short, directory):
        os.chmod(d, 0o755)
    broker = broker_factory("--socket-mode", "0666", directory=directory)

    def attempt(name: str, op: str) -> str:
        r = subprocess.run(
            [sys.executable, "-c", AS_OTHER_USER, broker.socket, name, op],
            env=shared_build.env(), user=user.pw_uid, group=user.pw_gid, extra_groups=[],
            cwd="/", capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        )
        assert r.returncode == 0, r.stderr
        return r.stdout.strip()

    assert attempt("none", "stat") == "NotFound"
    with shmarray.Client(broker.socket) as c:
        c.create("perm/y", (8,), "float64", mode=0o600)
        assert attempt("perm/y", "open-ro") == "PermissionDenied"
        assert attempt("perm/y", "stat") == "NotFound"  # not even its metadata
        assert attempt("perm/y", "chmod") in ("PermissionDenied", "NotFound")
        c.chmod("perm/y", 0o604)
        assert attempt("perm/y", "open-ro") == "ok"
        assert attempt("perm/y", "open-rw") == "PermissionDenied"
        assert attempt("perm/y", "chmod") == "PermissionDenied"  # readable, but not its owner
        c.chmod("perm/y", 0o606)
        assert attempt("perm/y", "open-rw") == "ok"
        assert c.stat("perm/y").mode == 0o606  # the other user's chmod changed nothing
        c.remove("perm/y")
