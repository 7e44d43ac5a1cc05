"""Export fixtures: a store with known runs, a real `mlflow server`, a burst SimpleWorker."""

from __future__ import annotations

import math
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from batches import make_batch
from rq import SimpleWorker

from aquarium.collector import Store
from aquarium.workers import export_queue

STEPS = 500


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """A data dir: run ``r1`` (2 keys, 2 ranks, NaN/Inf, params incl. a long and a renamed one,
    tags, terminated) and run ``r2`` (completed, one key)."""
    path = tmp_path / "source"
    steps = list(range(STEPS))
    with Store(path) as store:
        store.ingest(
            [
                make_batch(
                    0,
                    steps,
                    [float(s) / 7 for s in steps],
                    run="r1",
                    params={"lr": 0.001, "layers": 4, "long": "x" * 7000, "bad key!": [1, 2]},
                    tags={"prod": "", "team": "vision"},
                    meta={"name": "alpha", "experiment": "exp1"},
                    status=[("running", 1.7e9), ("terminated", 1.7e9 + 9.5)],
                ),
                make_batch(1, [0, 1, 2, 3], [1.0, math.nan, math.inf, -math.inf], run="r1", key="odd"),
                make_batch(0, [0, 1, 2], [3.0, 4.0, 5.0], run="r1", rank=1),
                make_batch(0, [0, 1], [0.5, 0.25], run="r2", meta={"name": "beta"}, status=[("completed", 1.7e9 + 1)]),
            ]
        )
    return path


@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture
def work(connection: redis.Redis) -> Callable[[], None]:
    """Run every queued export job in this process, then return."""

    def run() -> None:
        SimpleWorker([export_queue(connection)], connection=connection).work(burst=True)

    return run


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real `mlflow server` (sqlite backend) for the module."""
    root = tmp_path_factory.mktemp("mlflow")
    port = _free_port()
    log = open(root / "server.log", "wb")
    command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    command += ["--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}", "--default-artifact-root", str(root / "art")]
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1) as answer:
                if answer.status == 200:
                    break
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            log.close()
            raise RuntimeError("mlflow server did not start:\n" + (root / "server.log").read_text()[-3000:])
        time.sleep(0.2)
    yield uri
    os.killpg(process.pid, signal.SIGTERM)  # the server and the workers it started, nothing else
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()
