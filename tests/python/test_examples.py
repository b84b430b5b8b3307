"""The Python examples run against a real broker (and the C++ producer, when built)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from conftest import PRODUCER, REPO, child_env

EXAMPLES = REPO / "examples" / "python"


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
