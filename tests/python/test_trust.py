"""Trust on the socket from Python: a Client refuses a broker run by another user (an impostor
that user may have started in a directory it created first) unless told to trust that uid
(broker_uid= or $SHMARRAY_BROKER_UID), and open(owner=) refuses a squatter's array, also when
waiting for the name. The other user is the test user the C++ security tests create; without root
these tests are skipped."""

from __future__ import annotations

import concurrent.futures
import os
import pwd
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import shmarray
from conftest import CHILD_TIMEOUT_S, START_DEADLINE_S, STOP_DEADLINE_S, child_env

TEST_USER = "shmarray-test-a"

# Runs as TEST_USER: creates an array under the given name (a squatter), prints "ok".
SQUAT = """
import sys, shmarray
with shmarray.Client(sys.argv[1]) as c:
    c.create(sys.argv[2], (4,), "int32", mode=0o644)
print("ok")
"""


def _other_user() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("needs root to run a broker or a client as another user")
    try:
        return pwd.getpwnam(TEST_USER)
    except KeyError:
        pytest.skip(f"user {TEST_USER} does not exist (the C++ security tests create it)")


@pytest.fixture
def impostor(tmpdir_short, shared_build):
    """shmarrayd run by the test user in a directory that user owns; yields (socket, uid)."""
    user = _other_user()
    os.chmod(tmpdir_short, 0o755)
    directory = tmpdir_short / "theirs"
    directory.mkdir(mode=0o700)
    os.chown(directory, user.pw_uid, user.pw_gid)
    socket = str(directory / "s.sock")
    proc = subprocess.Popen(
        [str(shared_build.shmarrayd), "--socket", socket, "--log-level", "warn"],
        user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
    )
    try:
        deadline = time.monotonic() + START_DEADLINE_S
        while True:  # ready once a connect reaches it (and is refused by the trust check)
            assert proc.poll() is None, f"the impostor broker exited with {proc.returncode}"
            try:
                shmarray.Client(socket, timeout=2.0).close()
                pytest.fail("a root client accepted a broker run by another user")
            except shmarray.PermissionDenied:
                break
            except shmarray.BrokerUnavailable:
                pass
            assert time.monotonic() < deadline, "the impostor broker did not start"
            time.sleep(0.01)
        yield socket, user.pw_uid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=STOP_DEADLINE_S)


def test_client_refuses_a_broker_of_another_user_naming_both_uids(impostor):
    socket, uid = impostor
    with pytest.raises(shmarray.PermissionDenied) as refused:
        shmarray.Client(socket)
    message = str(refused.value)
    assert f"runs as uid {uid}" in message
    assert f"uid {os.geteuid()}" in message
    assert socket in message
    assert f"SHMARRAY_BROKER_UID={uid}" in message
    assert isinstance(refused.value, PermissionError)


def test_broker_uid_or_the_environment_trusts_a_system_broker(impostor):
    socket, uid = impostor
    with shmarray.Client(socket, broker_uid=uid) as c:
        c.create("trusted/x", (4,), "int32")
        assert c.stat("trusted/x").owner_uid == os.geteuid()
        with pytest.raises(shmarray.PermissionDenied):
            shmarray.Client(socket, broker_uid=uid + 1)
        env = child_env()
        env["SHMARRAY_BROKER_UID"] = str(uid)
        r = subprocess.run(
            [sys.executable, "-c",
             "import sys, shmarray; print(shmarray.Client(sys.argv[1]).stat('trusted/x').shape)",
             socket],
            env=env, capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
        )
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == "(4,)"
        c.remove("trusted/x")


@pytest.fixture
def shared_broker(broker_factory, tmpdir_short):
    """A root broker other users may reach (0755 directories, 0666 socket)."""
    _other_user()
    directory = tmpdir_short / "shared"
    directory.mkdir()
    for d in (tmpdir_short, directory):
        os.chmod(d, 0o755)
    return broker_factory("--socket-mode", "0666", directory=directory)


def _squat(shared_build, socket: str, name: str) -> None:
    user = _other_user()
    r = subprocess.run(
        [sys.executable, "-c", SQUAT, socket, name],
        env=shared_build.env(), user=user.pw_uid, group=user.pw_gid, extra_groups=[], cwd="/",
        capture_output=True, text=True, timeout=CHILD_TIMEOUT_S,
    )
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr


def test_open_with_owner_refuses_a_squatters_array_naming_the_real_owner(shared_broker,
                                                                         shared_build):
    squatter = _other_user().pw_uid
    _squat(shared_build, shared_broker.socket, "cam/frame")
    with shmarray.Client(shared_broker.socket) as c:
        with pytest.raises(shmarray.PermissionDenied, match=f"owned by uid {squatter}, not by uid 0"):
            c.open("cam/frame", owner=0)
        assert c.open("cam/frame", owner=squatter).shape == (4,)
        c.remove("cam/frame")


def test_waiting_open_with_owner_is_not_satisfied_by_a_squatters_array(shared_broker,
                                                                       shared_build):
    # Whether the open parks before the squatter's create or finds its array at once, it fails
    # with the real owner named, long before its 60 s wait would run out.
    squatter = _other_user().pw_uid
    with shmarray.Client(shared_broker.socket, timeout=120) as victim, \
            concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(victim.open, "cam/late", wait=60, owner=os.geteuid())
        _squat(shared_build, shared_broker.socket, "cam/late")
        with pytest.raises(shmarray.PermissionDenied, match=f"owned by uid {squatter}"):
            waiting.result(timeout=30)
    with shmarray.Client(shared_broker.socket) as c:
        c.remove("cam/late")
