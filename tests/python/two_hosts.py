"""Two "hosts" on one machine for the Python tests of mirrors across hosts (issue 15); the twin of
tests/support/two_hosts.hpp (read its header for the design).

Host A is a network namespace; host B a second one joined to A by a veth pair (A = 10.77.x.1/24,
B = 10.77.x.2/24, `veth0` in both) with its own mount namespace and a private tmpfs on /dev/shm,
held by a `cat` child (it exits when its stdin, our pipe, closes). Processes start on A with
`ip netns exec` (which also mounts A's own /sys, where UCX lists devices) and on B with
`nsenter -t HOLDER -m -n`. `close()` (also via `with`, and the `two_hosts` fixture's teardown,
when a test fails too) SIGKILLs every process left in the namespaces and deletes them.

`make_or_skip()` skips the test, saying why, where namespaces cannot be made (not root, no
iproute2/util-linux, no CAP_SYS_ADMIN).

Brokers on a host: `HostBroker`, ready when it sends READY=1 on its NOTIFY_SOCKET (never a sleep);
a thread then reads and drops what it sends there until it stops.
"""

from __future__ import annotations

import itertools
import os
import re
import select
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

NAME_PREFIX = "shmarray-hp"
_counter = itertools.count()

A = "A"
B = "B"


def _tool(name: str) -> str | None:
    for d in ("/usr/sbin", "/usr/bin", "/sbin", "/bin"):
        p = os.path.join(d, name)
        if os.access(p, os.X_OK):
            return p
    return None


def _run(argv: list[str], timeout: float = 10.0) -> subprocess.CompletedProcess:
    return subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                          timeout=timeout, check=False)


def _netns_pids(name: str) -> list[int]:
    out = _run([_tool("ip"), "netns", "pids", name]).stdout.split()
    return [int(p) for p in out if p.isdigit() and int(p) not in (1, os.getpid())]


def _empty_netns(name: str) -> None:
    """SIGKILLs what runs in `name` until nothing does (5 s at most); again on every look, as a
    process started just before may join the namespace meanwhile."""
    deadline = time.monotonic() + 5.0
    while (pids := _netns_pids(name)) and time.monotonic() < deadline:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.02)


def _sweep_stale() -> None:
    """Namespaces of a test process that died without its teardown."""
    try:
        names = os.listdir("/run/netns")
    except OSError:
        return
    for name in names:
        m = re.match(re.escape(NAME_PREFIX) + r"(\d+)-", name)
        if not m:
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            _empty_netns(name)
            _run([_tool("ip"), "netns", "del", name])
        except PermissionError:
            pass


class CannotMakeHosts(Exception):
    """Namespaces cannot be made on this machine (a test should skip)."""


class TwoHosts:
    DEVICE = "veth0"

    def __init__(self, loopback: bool = False):
        if os.geteuid() != 0:
            raise CannotMakeHosts("network namespaces need root (run the tests as root)")
        self.ip = _tool("ip")
        self.nsenter = _tool("nsenter")
        unshare = _tool("unshare")
        if self.ip is None:
            raise CannotMakeHosts("no `ip` (apt-get install iproute2)")
        if self.nsenter is None or unshare is None:
            raise CannotMakeHosts("no `nsenter`/`unshare` (apt-get install util-linux)")
        _sweep_stale()
        n = next(_counter)
        stem = f"{NAME_PREFIX}{os.getpid()}-{n}-"
        self.loopback = loopback
        self.netns_a = stem + "a"
        self.netns_b = self.netns_a if loopback else stem + "b"
        self._created: list[str] = []
        self.holder: subprocess.Popen | None = None
        r = _run([self.ip, "netns", "add", self.netns_a])
        if r.returncode != 0:
            raise CannotMakeHosts(f"`ip netns add` failed (needs CAP_SYS_ADMIN): {r.stdout.strip()}")
        self._created.append(self.netns_a)
        try:
            self._build(unshare, (os.getpid() * 11 + n) % 250 + 1)
        except BaseException:
            self.close()
            raise

    def _build(self, unshare: str, x: int) -> None:
        ip, a, b, dev = self.ip, self.netns_a, self.netns_b, self.DEVICE
        steps = [[ip, "-n", a, "link", "set", "lo", "up"]]
        if self.loopback:
            self.address_a = self.address_b = "127.0.0.1"
        else:
            r = _run([ip, "netns", "add", b])
            if r.returncode != 0:
                raise RuntimeError(f"ip netns add {b}: {r.stdout}")
            self._created.append(b)
            self.address_a, self.address_b = f"10.77.{x}.1", f"10.77.{x}.2"
            steps += [
                [ip, "-n", b, "link", "set", "lo", "up"],
                [ip, "-n", a, "link", "add", dev, "type", "veth", "peer", "name", dev, "netns", b],
                [ip, "-n", a, "addr", "add", self.address_a + "/24", "dev", dev],
                [ip, "-n", b, "addr", "add", self.address_b + "/24", "dev", dev],
                [ip, "-n", a, "link", "set", dev, "up"],
                [ip, "-n", b, "link", "set", dev, "up"],
            ]
        for step in steps:
            r = _run(step)
            if r.returncode != 0:
                raise RuntimeError(f"`{' '.join(step)}`: {r.stdout.strip()}")
        self._wait_operstate_up()
        self.holder = subprocess.Popen(
            [ip, "netns", "exec", b, unshare, "-m", "--propagation", "private", "/bin/sh", "-c",
             "mount -t tmpfs -o mode=1777 shmarray-host-b /dev/shm && echo ready && exec cat"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready, _, _ = select.select([self.holder.stdout], [], [], 10.0)
        line = self.holder.stdout.readline() if ready else b""
        if line.strip() != b"ready":
            raise RuntimeError(f"could not give host B a private /dev/shm: {line!r}")

    # --- addresses and processes ------------------------------------------------------------

    def address(self, host: str) -> str:
        return self.address_a if host == A else self.address_b

    def netns(self, host: str) -> str:
        return self.netns_a if host == A else self.netns_b

    def prefix(self, host: str) -> list[str]:
        if host == A:
            return [self.ip, "netns", "exec", self.netns_a]
        return [self.nsenter, "-t", str(self.holder.pid), "-m", "-n", "--"]

    def popen(self, host: str, argv: list[str], **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.prefix(host) + list(argv), **kwargs)

    def run(self, host: str, argv: list[str], timeout: float = 60.0,
            **kwargs) -> subprocess.CompletedProcess:
        kwargs.setdefault("stdout", subprocess.PIPE)
        kwargs.setdefault("stderr", subprocess.PIPE)
        return subprocess.run(self.prefix(host) + list(argv), timeout=timeout, check=False,
                              **kwargs)

    def shm_dir(self, host: str) -> str:
        return "/dev/shm" if host == A else f"/proc/{self.holder.pid}/root/dev/shm"

    # --- the link ------------------------------------------------------------------------------

    def _set_link(self, state: str) -> None:
        if self.loopback:
            return
        for ns in (self.netns_a, self.netns_b):
            r = _run([self.ip, "-n", ns, "link", "set", self.DEVICE, state])
            if r.returncode != 0:
                raise RuntimeError(f"ip link set {state}: {r.stdout}")

    def link_down(self) -> None:
        self._set_link("down")

    def link_up(self) -> None:
        self._set_link("up")
        self._wait_operstate_up()

    def _wait_operstate_up(self) -> None:
        """Until both ends say "state UP" (10 s at most): the kernel sets a veth's operstate
        asynchronously, and UCX refuses a device that is not up yet."""
        if self.loopback:
            return
        deadline = time.monotonic() + 10.0
        while True:
            outs = [_run([self.ip, "-n", ns, "-o", "link", "show", self.DEVICE]).stdout
                    for ns in (self.netns_a, self.netns_b)]
            if all("state UP" in o for o in outs):
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the veth link did not come up within 10 s: {outs}")
            time.sleep(0.02)

    # --- teardown ------------------------------------------------------------------------------

    def close(self) -> None:
        for name in reversed(self._created):
            _empty_netns(name)
        if self.holder is not None:
            try:
                self.holder.kill()
            except ProcessLookupError:
                pass
            self.holder.wait(timeout=5)
            self.holder.stdin.close()
            self.holder.stdout.close()
            self.holder = None
        for name in reversed(self._created):
            _run([self.ip, "netns", "del", name])
        self._created = []

    def __enter__(self) -> "TwoHosts":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def make_or_skip(loopback: bool = False) -> TwoHosts:
    try:
        return TwoHosts(loopback=loopback)
    except CannotMakeHosts as e:
        pytest.skip(f"cannot make two hosts here: {e}")


class HostBroker:
    """A real shmarrayd on one host, ready when it sent READY=1 on NOTIFY_SOCKET."""

    READY_TIMEOUT_S = 20.0

    def __init__(self, hosts: TwoHosts, host: str, shmarrayd: Path, args: list[str] = (),
                 env: dict[str, str] | None = None):
        self.hosts, self.host = hosts, host
        self.shmarrayd = str(shmarrayd)
        self.args = list(args)
        self.env = dict(os.environ, **(env or {}))
        self.dir = Path(tempfile.mkdtemp(prefix="shmarray-hostpy-"))
        self.socket = str(self.dir / "s.sock")
        self.log_path = self.dir / "broker.log"
        self.proc: subprocess.Popen | None = None
        self._notify: socket.socket | None = None
        self._drain: threading.Thread | None = None
        self._draining = False
        self.start()

    def start(self) -> None:
        notify_path = str(self.dir / "notify")
        if self._notify is None:
            self._notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._notify.bind(notify_path)
        env = dict(self.env, NOTIFY_SOCKET=notify_path)
        with open(self.log_path, "ab") as log:
            self.proc = self.hosts.popen(
                self.host,
                [self.shmarrayd, "--socket", self.socket, "--log-level", "info", *self.args],
                stdout=log, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + self.READY_TIMEOUT_S
        while time.monotonic() < deadline:
            # Short slices only to notice a broker that exited instead of saying READY=1.
            ready, _, _ = select.select([self._notify], [], [], 0.1)
            if ready and b"READY=1" in self._notify.recv(4096):
                self._start_draining()
                return
            if self.proc.poll() is not None:
                pytest.fail(f"shmarrayd on host {self.host} exited with "
                            f"{self.proc.returncode}:\n{self.log()}")
        self.kill()
        pytest.fail(f"shmarrayd on host {self.host}: no READY=1 within "
                    f"{self.READY_TIMEOUT_S} s:\n{self.log()}")

    def _start_draining(self) -> None:
        """Reads and drops what the broker keeps sending (STATUS=, STOPPING=1; with a blocking
        sendto) until it has stopped."""
        self._draining = True

        def drain() -> None:
            while self._draining:
                ready, _, _ = select.select([self._notify], [], [], 0.1)
                if ready:
                    self._notify.recv(4096)

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()

    def _stop_draining(self) -> None:
        self._draining = False
        if self._drain is not None:
            self._drain.join(timeout=5)
            self._drain = None

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.kill()
            return None
        finally:
            self._stop_draining()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._stop_draining()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def segments(self) -> list[str]:
        """This broker's segments in its host's /dev/shm."""
        import shmarray  # the module under test (conftest puts the build's on sys.path)
        prefix = shmarray._segment_prefix(self.socket).lstrip("/")
        try:
            return sorted(n for n in os.listdir(self.hosts.shm_dir(self.host)) if n.startswith(prefix))
        except OSError:
            return []

    def close(self) -> None:
        """Kills the broker, removes what is left of its segments and its directory."""
        self.kill()
        if self._notify is not None:
            self._notify.close()
            self._notify = None
        for name in self.segments():
            try:
                os.unlink(os.path.join(self.hosts.shm_dir(self.host), name))
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)
