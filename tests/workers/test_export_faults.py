"""Faults during an export: the work-horse killed with SIGKILL mid-export, and a job past its timeout.

A forking `aquarium worker` runs in a subprocess; the run is large enough (3 series x 20k points)
that the export is still going when ``job.meta`` first shows progress, which is when the horse
(the worker's forked child) is killed. RQ fails that attempt ("Work-horse terminated
unexpectedly") and retries it; the retry finds the MLflow run by its tag, skips the series whose
digest tag says they are complete, reads back the one cut short and sends only what is missing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from array import array
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
import redis
from mlflow import MlflowClient
from rq.job import Job

from aquarium.agent.wire import Batch, BatchId, MetricChunk
from aquarium.collector import Store
from aquarium.workers import enqueue_export, wait_for

KEYS, POINTS = 3, 20_000
AQUARIUM = str(Path(sys.executable).with_name("aquarium"))


def _big_run(path: Path, run_id: str) -> None:
    """``KEYS`` series of ``POINTS`` points, in batches of 5000 steps."""
    with Store(path) as store:
        for seq, lo in enumerate(range(0, POINTS, 5000)):
            steps = list(range(lo, lo + 5000))
            chunks = [
                MetricChunk(
                    f"m{k}",
                    array("q", steps).tobytes(),
                    array("d", [s * 0.5 + k for s in steps]).tobytes(),
                    array("d", [1.7e9 + s * 1e-3 for s in steps]).tobytes(),
                )
                for k in range(KEYS)
            ]
            meta = {"name": run_id, "experiment": "faults"} if seq == 0 else None
            store.ingest([Batch(BatchId(run_id, 0, "inc-a", seq), chunks, meta=meta)])


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big"
    for run_id in ("clean", "killed", "slow"):
        _big_run(path, run_id)
    return path


@pytest.fixture
def forking_worker(redis_url: str, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`aquarium worker` (a forking rq Worker with its scheduler), its output in worker.log."""
    log = open(tmp_path / "worker.log", "wb")
    process = subprocess.Popen(
        [AQUARIUM, "worker", "--redis-url", redis_url], stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    log.close()


def _wait(condition: Callable[[], bool], timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.05)


def _histories(uri: str, run_id: str) -> dict[str, list[tuple[int, float, int]]]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("faults")
    (ml_run,) = client.search_runs([experiment.experiment_id], filter_string=f"tags.`aquarium.run_id` = '{run_id}'")
    return {
        f"m{k}": sorted((m.step, m.value, m.timestamp) for m in client.get_metric_history(ml_run.info.run_id, f"m{k}"))
        for k in range(KEYS)
    }


def test_a_killed_work_horse_is_retried_and_the_target_equals_a_clean_export(
    big: Path, connection: redis.Redis, forking_worker: subprocess.Popen[bytes], mlflow_uri: str, tmp_path: Path
) -> None:
    options = {"tracking_uri": mlflow_uri}
    clean = enqueue_export(connection, "mlflow", "clean", str(big), options, retry_intervals=[0])
    assert wait_for([clean], timeout=300)[0].status == "finished"

    job = enqueue_export(connection, "mlflow", "killed", str(big), options, retry_intervals=[0, 0])
    _wait(lambda: int(job.get_meta(refresh=True).get("done") or 0) > 0)
    done_at_kill = int(job.get_meta(refresh=True)["done"])
    children = psutil.Process(forking_worker.pid).children()
    (horse,) = [c for c in children if os.getpgid(c.pid) == c.pid]  # the forked horse leads its own group
    os.kill(horse.pid, signal.SIGKILL)
    (o,) = wait_for([job], timeout=300)
    assert o.status == "finished", o.error
    assert done_at_kill < KEYS * POINTS  # the kill came mid-export
    assert "Work-horse terminated unexpectedly" in (tmp_path / "worker.log").read_text()
    assert Job.fetch(job.id, connection=connection).retries_left == 1  # one of the two retries used

    expected = {
        f"m{k}": [(s, s * 0.5 + k, round((1.7e9 + s * 1e-3) * 1000)) for s in range(POINTS)] for k in range(KEYS)
    }
    killed, reference = _histories(mlflow_uri, "killed"), _histories(mlflow_uri, "clean")
    assert killed == reference == expected  # nothing doubled, nothing missing
    assert o.report is not None and o.report["fields"]["points"] == {"kept": KEYS * POINTS, "not_kept": 0}


def test_a_job_past_its_timeout_fails_with_the_reason(
    big: Path, connection: redis.Redis, work: Callable[[], None], mlflow_uri: str
) -> None:
    job = enqueue_export(
        connection, "mlflow", "slow", str(big), {"tracking_uri": mlflow_uri}, retry_intervals=[], timeout=1
    )
    work()
    (o,) = wait_for([job])
    assert o.status == "failed"
    assert "JobTimeoutException" in (o.error or "") and "maximum timeout value (1 seconds)" in (o.error or "")
