"""The Python two-hosts harness itself (tests/python/two_hosts.py): TCP crosses the veth link and
fails while it is down; host B's /dev/shm is private; a broker on B keeps its segments there and
serves this process; teardown leaves no namespace and no process. Skipped, saying why, where
namespaces cannot be made."""

from __future__ import annotations

import os
import select
import subprocess
import sys

import numpy as np
import pytest

import shmarray
from conftest import SHMARRAYD
from two_hosts import A, B, HostBroker, make_or_skip

ECHO_SERVER = """
import socket, sys
s = socket.socket(); s.bind((sys.argv[1], 0)); s.listen()
print(s.getsockname()[1], flush=True)
s.settimeout(60)
while True:
    c, _ = s.accept()
    c.settimeout(60)
    while (b := c.recv(4096)):
        c.sendall(b)
"""

ECHO_CLIENT = """
import socket, sys
try:
    c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=float(sys.argv[3]))
except OSError:
    sys.exit(10)
c.settimeout(5); c.sendall(b"ping")
sys.exit(0 if c.recv(4) == b"ping" else 13)
"""


@pytest.fixture
def two_hosts():
    hosts = make_or_skip()
    yield hosts
    hosts.close()


def echo(hosts, port: int, connect_timeout: float) -> int:
    r = hosts.run(A, [sys.executable, "-c", ECHO_CLIENT, hosts.address(B), str(port),
                      str(connect_timeout)], timeout=30)
    return r.returncode


def test_tcp_echo_crosses_the_link_and_fails_while_it_is_down(two_hosts):
    server = two_hosts.popen(B, [sys.executable, "-c", ECHO_SERVER, two_hosts.address(B)],
                             stdout=subprocess.PIPE, text=True)
    try:
        import select
        ready, _, _ = select.select([server.stdout], [], [], 10.0)
        assert ready, "the echo server on B did not report its port in 10 s"
        port = int(server.stdout.readline())
        assert echo(two_hosts, port, 10.0) == 0
        two_hosts.link_down()
        assert echo(two_hosts, port, 2.0) == 10, "A reached B with the link down"
        two_hosts.link_up()
        assert echo(two_hosts, port, 10.0) == 0, "no echo after link_up()"
    finally:
        server.kill()
        server.wait(timeout=10)
        server.stdout.close()


def test_host_b_dev_shm_is_private(two_hosts):
    name = f"shmarray-two-hosts-py-{os.getpid()}"
    r = two_hosts.run(B, ["/bin/sh", "-c", f"echo b > /dev/shm/{name}"])
    assert r.returncode == 0, r.stderr
    assert os.path.exists(os.path.join(two_hosts.shm_dir(B), name))
    assert not os.path.exists(f"/dev/shm/{name}"), "a file made on B appeared in /dev/shm here"
    with open(f"/dev/shm/{name}-a", "w") as f:
        f.write("a")
    try:
        seen = two_hosts.run(B, ["/bin/sh", "-c", f"test -e /dev/shm/{name}-a"])
        assert seen.returncode == 1, "B sees a file of this machine's /dev/shm"
    finally:
        os.unlink(f"/dev/shm/{name}-a")


def test_broker_on_b_keeps_its_segments_in_bs_dev_shm(two_hosts):
    broker = HostBroker(two_hosts, B, SHMARRAYD)
    try:
        with shmarray.Client(broker.socket, timeout=5.0) as c:
            a = c.create("hosts/b", (1024,), dtype="<u4")
            a[7] = 77
            assert len(broker.segments()) == 1, "the segment is not in B's /dev/shm"
            prefix = shmarray._segment_prefix(broker.socket).lstrip("/")
            assert not [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
            del a
            c.remove("hosts/b")
        assert broker.stop() == 0
        assert broker.segments() == []
    finally:
        broker.close()


def test_teardown_kills_everything_inside_and_deletes_the_namespaces():
    hosts = make_or_skip()
    names = {hosts.netns(A), hosts.netns(B)}
    # Each says "ready" once it runs inside its host's namespaces (nsenter has finished): a close
    # before that would find nothing to kill there.
    inside = ["/bin/sh", "-c", "echo ready; exec cat"]
    on_a = hosts.popen(A, inside, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    on_b = hosts.popen(B, inside, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        for p in (on_a, on_b):
            readable, _, _ = select.select([p.stdout], [], [], 10)
            assert readable, "a process did not start inside its host within 10 s"
            assert p.stdout.readline() == b"ready\n"
        hosts.close()
        assert on_a.wait(timeout=10) == -9
        assert on_b.wait(timeout=10) == -9
        for name in names:
            assert not os.path.exists(f"/run/netns/{name}")
    finally:
        hosts.close()  # a second close finds nothing left to do
        for p in (on_a, on_b):
            p.kill()
            p.wait(timeout=10)
            p.stdin.close()
            p.stdout.close()
