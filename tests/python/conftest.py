"""Fixtures for the shmarray Python tests.

SHMARRAY_BUILD_DIR names the CMake build directory (default: <repo>/build). It must hold
python/shmarray*.so and server/shmarrayd; tests/shmarray_test_helper and examples/producer are used
when present (the tests that need them are skipped otherwise).

Every test gets its own broker on a socket in a fresh temporary directory, polled for readiness
with a deadline and stopped at teardown; the teardown then asserts that no segment of that broker
is left in /dev/shm (and removes any it finds, so one failure does not leak into the next run).
"""

from __future__ import annotations

import glob
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_DIR = Path(os.environ.get("SHMARRAY_BUILD_DIR", REPO / "build")).resolve()
PYTHON_DIR = BUILD_DIR / "python"
SHMARRAYD = BUILD_DIR / "server" / "shmarrayd"
HELPER = BUILD_DIR / "tests" / "shmarray_test_helper"
PRODUCER = BUILD_DIR / "examples" / "producer"

if str(PYTHON_DIR) not in sys.path:
    sys.path.insert(0, str(PYTHON_DIR))

import shmarray  # noqa: E402  (after the path set-up above)

START_DEADLINE_S = 10.0
STOP_DEADLINE_S = 5.0
CHILD_TIMEOUT_S = 60.0


def child_env() -> dict[str, str]:
    """Environment for child Python processes: finds the same shmarray module."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(PYTHON_DIR), env.get("PYTHONPATH", "")) if p
    )
    env["SHMARRAY_BUILD_DIR"] = str(BUILD_DIR)
    return env


class Broker:
    """A real shmarrayd on a private socket."""

    def __init__(self, directory: Path, extra_args: tuple[str, ...] = ()):
        self.directory = directory
        self.socket = str(directory / "s.sock")
        self.log_path = directory / "broker.log"
        self.extra_args = extra_args
        self.segment_glob = "/dev/shm/" + shmarray._segment_prefix(self.socket).lstrip("/") + "*"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if not SHMARRAYD.exists():
            pytest.fail(f"{SHMARRAYD} not built (set SHMARRAY_BUILD_DIR)")
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [str(SHMARRAYD), "--socket", self.socket, "--log-level", "info", *self.extra_args],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + START_DEADLINE_S
        while True:
            if self.proc.poll() is not None:
                pytest.fail(f"shmarrayd exited with {self.proc.returncode}:\n{self.log()}")
            try:
                shmarray.Client(self.socket, timeout=2.0).close()
                return
            except shmarray.BrokerUnavailable:
                pass
            if time.monotonic() > deadline:
                self.kill()
                pytest.fail(f"shmarrayd not ready within {START_DEADLINE_S} s:\n{self.log()}")
            time.sleep(0.02)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after STOP_DEADLINE_S."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=STOP_DEADLINE_S)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_DEADLINE_S)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"

    def segments(self) -> list[str]:
        return sorted(glob.glob(self.segment_glob))


@pytest.fixture
def tmpdir_short():
    """A short temporary directory (Unix socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="shmarray-py-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _sweep_and_check(broker: Broker) -> None:
    broker.stop()
    leaked = broker.segments()
    for path in leaked:
        try:
            os.unlink(path)
        except OSError:
            pass
    assert not leaked, f"segments left in /dev/shm: {leaked}\nbroker log:\n{broker.log()}"


@pytest.fixture
def broker(tmpdir_short):
    """A running broker; stopped at teardown, which asserts /dev/shm holds none of its segments."""
    b = Broker(tmpdir_short)
    b.start()
    yield b
    # Remove what a failed test may have left, so the leak check below tests the broker, and a
    # failing test reports its own failure rather than a leak.
    if b.proc is not None and b.proc.poll() is None:
        try:
            with shmarray.Client(b.socket, timeout=5.0) as c:
                for info in c.list():
                    c.remove(info.name)
        except shmarray.Error:
            pass
    _sweep_and_check(b)


@pytest.fixture
def broker_factory(tmpdir_short):
    """Starts brokers with extra arguments; all stopped and leak-checked at teardown."""
    started: list[Broker] = []

    def start(*extra_args: str, directory: Path | None = None) -> Broker:
        d = directory or Path(tempfile.mkdtemp(prefix="b", dir=tmpdir_short))
        b = Broker(d, tuple(extra_args))
        b.start()
        started.append(b)
        return b

    yield start
    for b in started:
        if b.proc is not None and b.proc.poll() is None:
            try:
                with shmarray.Client(b.socket, timeout=5.0) as c:
                    for info in c.list():
                        c.remove(info.name)
            except shmarray.Error:
                pass
        _sweep_and_check(b)


@pytest.fixture
def client(broker):
    with shmarray.Client(broker.socket) as c:
        yield c


class SharedBuild:
    """What processes of another user need from the build, copied where they can reach it."""

    def __init__(self, directory: Path):
        self.directory = directory
        self.shmarrayd = directory / "shmarrayd"

    def env(self) -> dict[str, str]:
        """Environment for a child Python of another user: imports the copied module."""
        env = child_env()
        env["PYTHONPATH"] = str(self.directory)
        return env


@pytest.fixture(scope="session")
def shared_build():
    """The built module and shmarrayd copied to a fresh 0755 directory, for children run as another
    user: the build tree itself may sit under a directory they cannot traverse (a 0700 home or
    `mktemp -d` folder). Removed at the end of the session."""
    directory = Path(tempfile.mkdtemp(prefix="shmarray-shared-"))
    try:
        os.chmod(directory, 0o755)
        for module in PYTHON_DIR.glob("shmarray*.so"):
            shutil.copy2(module, directory / module.name)
            os.chmod(directory / module.name, 0o755)
        if SHMARRAYD.exists():
            shutil.copy2(SHMARRAYD, directory / "shmarrayd")
            os.chmod(directory / "shmarrayd", 0o755)
        yield SharedBuild(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def run_python(code: str, *args: str, timeout: float = CHILD_TIMEOUT_S) -> subprocess.CompletedProcess:
    """Runs `code` in a fresh /usr/bin/python3-like interpreter (the one running the tests)."""
    return subprocess.run(
        [sys.executable, "-c", code, *args],
        env=child_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_helper(*args: str, timeout: float = CHILD_TIMEOUT_S) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(HELPER), *args], capture_output=True, text=True, timeout=timeout
    )


def wait_until_sleeping(pid: int, timeout: float = 5.0) -> bool:
    """True once process `pid` is asleep in the kernel (state S in /proc/<pid>/stat), e.g. in a
    futex wait: the readiness signal for tests of the sleeping path (polled with a deadline)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(f"/proc/{pid}/stat") as f:
                stat = f.read()
            if stat[stat.rindex(")") + 2] == "S":
                return True
        except (OSError, ValueError, IndexError):
            pass
        time.sleep(0.001)
    return False


def require_helper() -> None:
    if not HELPER.exists():
        pytest.skip(f"{HELPER} not built")


class Child:
    """A background child process whose stdout is read line by line with deadlines."""

    def __init__(self, argv: list[str]):
        self.proc = subprocess.Popen(
            argv,
            env=child_env(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )

    @classmethod
    def python(cls, code: str, *args: str) -> "Child":
        return cls([sys.executable, "-u", "-c", code, *args])

    def readline(self, timeout: float = 20.0) -> str:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            self.kill()
            pytest.fail(f"child printed nothing within {timeout} s; stderr:\n{self.stderr()}")
        line = self.proc.stdout.readline()
        if not line:
            self.proc.wait(timeout=5)
            pytest.fail(f"child exited ({self.proc.returncode}); stderr:\n{self.stderr()}")
        return line.strip()

    def expect(self, prefix: str, timeout: float = 20.0) -> str:
        line = self.readline(timeout)
        assert line.startswith(prefix), f"child said {line!r}, expected {prefix!r}"
        return line

    def send(self, text: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(text + "\n")
        self.proc.stdin.flush()

    def finish(self, timeout: float = 20.0) -> int:
        try:
            if self.proc.stdin is not None and not self.proc.stdin.closed:
                self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"child did not exit within {timeout} s")

    def stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return "(running)"
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


@pytest.fixture
def children():
    """Collects Child objects and kills any still running at teardown."""
    made: list[Child] = []

    def spawn_python(code: str, *args: str) -> Child:
        c = Child.python(code, *args)
        made.append(c)
        return c

    def spawn(argv: list[str]) -> Child:
        c = Child(argv)
        made.append(c)
        return c

    spawn_python.argv = spawn  # type: ignore[attr-defined]
    yield spawn_python
    for c in made:
        c.kill()
