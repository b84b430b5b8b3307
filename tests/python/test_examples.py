"""The Python examples run against a real broker (and the C++ producer, when built)."""

from __future__ import annotations

import re
import subprocess
import sys
import time

import pytest

import shmarray
from conftest import PRODUCER, REPO, child_env

EXAMPLES = REPO / "examples" / "python"
PYTHON_DOC = REPO / "docs" / "python.md"


def run_example(script: str, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(EXAMPLES / script), *args], env=child_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_cpp_producer_and_python_consumer(broker):
    if not PRODUCER.exists():
        pytest.skip(f"{PRODUCER} not built")
    producer = subprocess.Popen([str(PRODUCER), "--socket", broker.socket, "--timeout-s", "30"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        consumer = run_example("consumer.py", "--socket", broker.socket, "--timeout-s", "30")
        out, err = producer.communicate(timeout=60)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait(timeout=10)
    assert consumer.returncode == 0, consumer.stderr
    assert "1048576 of 1048576 values as the producer wrote them" in consumer.stdout
    assert producer.returncode == 0, out + err
    assert "1048576 of 1048576 values are doubled" in out


def test_python_consumer_times_out_without_producer(broker):
    r = run_example("consumer.py", "--socket", broker.socket, "--timeout-s", "0.3")
    assert r.returncode == 1
    assert "consumer:" in r.stderr


def test_pandas_view(broker):
    r = run_example("pandas_view.py", "--socket", broker.socket, "--updates", "3",
                    "--interval-s", "0.05", "--timeout-s", "20")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "shares the shared pages" in r.stdout
    assert "reader: version 3" in r.stdout
    assert "writer: update 3 published as version 3" in r.stdout


class DocExamples:
    """The quick-start producer and consumer of docs/python.md, run as a user would: saved as
    files and started with the broker's socket in $SHMARRAY_SOCKET (the default socket rule)."""

    def __init__(self, broker, directory):
        self.broker = broker
        self.env = child_env()
        self.env["SHMARRAY_SOCKET"] = broker.socket
        self.paths = {}
        for name in ("producer.py", "consumer.py"):
            path = directory / name
            path.write_text(self.block(name))
            self.paths[name] = path

    @staticmethod
    def block(name: str) -> str:
        """The ```python block of docs/python.md that starts with '# <name>', verbatim."""
        for block in re.findall(r"```python\n(.*?)```", PYTHON_DOC.read_text(), re.S):
            if block.startswith(f"# {name}"):
                return block
        raise AssertionError(f"docs/python.md has no python block starting with '# {name}'")

    def start(self, name: str) -> subprocess.Popen:
        return subprocess.Popen([sys.executable, str(self.paths[name])], env=self.env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def names(self) -> list[str]:
        with shmarray.Client(self.broker.socket) as c:
            return [i.name for i in c.list()]


def finish(proc: subprocess.Popen, what: str) -> str:
    try:
        out, err = proc.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"{what} did not finish within 60 s: {out}{err}")
    assert proc.returncode == 0, f"{what} exited {proc.returncode}:\n{out}{err}"
    return out


def test_doc_quickstart_consumer_first_twice_in_a_row(broker, tmpdir_short):
    examples = DocExamples(broker, tmpdir_short)
    for _ in range(2):
        consumer = examples.start("consumer.py")
        producer = examples.start("producer.py")
        out = finish(consumer, "consumer")
        assert len(re.findall(r"^frame \d+: mean 0\.\d{3}$", out, re.M)) == 3, out
        finish(producer, "producer")
        assert examples.names() == []  # nothing left for the next run to collide with


def test_doc_quickstart_producer_first_twice_in_a_row(broker, tmpdir_short):
    examples = DocExamples(broker, tmpdir_short)
    for _ in range(2):
        producer = examples.start("producer.py")
        deadline = time.monotonic() + 20
        while "cam/frame" not in examples.names():  # readiness: the producer created its array
            assert producer.poll() is None, producer.communicate()
            assert time.monotonic() < deadline, "the producer never created cam/frame"
            time.sleep(0.02)
        out = finish(examples.start("consumer.py"), "consumer")
        assert len(re.findall(r"^frame \d+: mean 0\.\d{3}$", out, re.M)) == 3, out
        finish(producer, "producer")
        assert examples.names() == []


def test_torch_step_consumes_batches_without_a_copy(broker):
    pytest.importorskip("torch", reason="python3-torch is not installed (apt-get install "
                        "--no-install-recommends python3-torch, or SHMARRAY_WITH_TORCH=1 "
                        "tools/setup.sh)")
    for _ in range(2):  # twice in a row: its arrays are ephemeral
        r = run_example("torch_step.py", "--socket", broker.socket, "--steps", "5",
                        "--timeout-s", "30")
        assert r.returncode == 0, r.stdout + r.stderr
        steps = re.findall(r"^consumer: step on batch (\d+) .*: loss ([0-9.]+)$", r.stdout, re.M)
        assert [int(v) for v, _ in steps] == [1, 2, 3, 4, 5], r.stdout
        assert float(steps[-1][1]) < float(steps[0][1])  # the model learned from shared batches
        assert "producer: 5 batches written and consumed" in r.stdout
        with shmarray.Client(broker.socket) as c:
            assert c.list() == []


def test_cpp_tick_producer_and_python_analyst(broker):
    producer_path = PRODUCER.parent / "tick_producer"
    if not producer_path.exists():
        pytest.skip(f"{producer_path} not built")
    producer = subprocess.Popen([str(producer_path), "--socket", broker.socket, "--ticks", "300",
                                 "--interval-ms", "1"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        analyst = run_example("tick_analyst.py", "--socket", broker.socket, "--timeout-s", "30")
        out, err = producer.communicate(timeout=60)
    finally:
        if producer.poll() is None:
            producer.kill()
            producer.wait(timeout=10)
    assert producer.returncode == 0, out + err
    assert analyst.returncode == 0, analyst.stdout + analyst.stderr
    assert "room for 300 ticks; columns shared: True" in analyst.stdout
    assert "analyst: 300 ticks to 2023-11-14 22:13:20.299000" in analyst.stdout
