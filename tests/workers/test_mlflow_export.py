"""Export to a real `mlflow server`, read back with MlflowClient."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from batches import make_batch
from mlflow import MlflowClient

from aquarium.collector import Store
from aquarium.workers import ExportManager, enqueue_export, export_queue, wait_for
from aquarium.workers.targets.mlflow import MAX_PARAM_VALUE


def _find(uri: str, run_id: str, experiment: str = "exp1") -> object:
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name(experiment).experiment_id
    runs = client.search_runs([experiment_id], filter_string=f"tags.`aquarium.run_id` = '{run_id}'")
    assert len(runs) == 1
    return runs[0]


def _history(uri: str, ml_id: str, key: str) -> list[tuple[int, float, int]]:
    return [(m.step, m.value, m.timestamp) for m in MlflowClient(uri).get_metric_history(ml_id, key)]


def test_points_params_tags_status_read_back_and_a_reexport_doubles_nothing(
    source: Path, connection: redis.Redis, work: Callable[[], None], mlflow_uri: str
) -> None:
    reports = []
    for _ in range(2):  # the second export finds the same MLflow run
        job = enqueue_export(connection, "mlflow", "r1", str(source), {"tracking_uri": mlflow_uri})
        work()
        (o,) = wait_for([job])
        assert o.status == "finished", o.error
        reports.append(o.report)
    run = _find(mlflow_uri, "r1")
    ml_id = run.info.run_id  # type: ignore[attr-defined]
    loss = _history(mlflow_uri, ml_id, "loss")
    assert [(s, v) for s, v, _ in loss] == [(s, s / 7) for s in range(500)]
    assert loss[3][2] == round((1.7e9 + 3e-3) * 1000)
    assert [(s, v) for s, v, _ in _history(mlflow_uri, ml_id, "loss/rank1")] == [(0, 3.0), (1, 4.0), (2, 5.0)]
    odd = [v for _, v, _ in _history(mlflow_uri, ml_id, "odd")]
    assert odd[0] == 1.0 and math.isnan(odd[1]) and odd[2] == 1.7976931348623157e308 and odd[3] == -odd[2]
    data, info = run.data, run.info  # type: ignore[attr-defined]
    assert data.params["lr"] == "0.001" and data.params["layers"] == "4"
    assert data.params["long"] == "x" * MAX_PARAM_VALUE and data.params["bad key_"] == "[1, 2]"
    assert data.tags["prod"] == "" and data.tags["team"] == "vision" and data.tags["aquarium.status"] == "terminated"
    assert info.status == "KILLED" and info.run_name == "alpha" and info.end_time == 1_700_000_009_500
    report = reports[0]
    assert report == reports[1] | {"destination": report["destination"]}
    assert report["fields"]["points"] == {"kept": 507, "not_kept": 0}
    notes = {(n["field"], n["what"]): n for n in report["notes"]}
    assert notes[("points", "NaN")]["count"] == 1 and notes[("points", "Inf")]["count"] == 2
    assert notes[("params", "truncated")]["examples"] == ["long"]
    assert notes[("params", "renamed")]["examples"] == ["bad key! -> bad key_"]
    assert notes[("points", "rank")]["count"] == 3
    assert notes[("status", "RunStatus")]["examples"] == ["terminated -> KILLED"]


def _attempts(caplog: pytest.LogCaptureFixture) -> int:
    return sum("exception raised while executing" in r.getMessage() for r in caplog.records)


def test_unknown_run_fails_at_once_with_the_reason(
    source: Path, connection: redis.Redis, work: Callable[[], None], mlflow_uri: str, caplog: pytest.LogCaptureFixture
) -> None:
    job = enqueue_export(
        connection, "mlflow", "nope", str(source), {"tracking_uri": mlflow_uri}, retry_intervals=[0, 0]
    )
    work()
    (o,) = wait_for([job])
    assert o.status == "failed"
    assert "ExportError: no run 'nope' in" in (o.error or "")
    assert _attempts(caplog) == 1  # permanent: not retried


def test_unreachable_tracking_uri_fails_after_its_retries(
    source: Path,
    connection: redis.Redis,
    work: Callable[[], None],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    dead = "http://127.0.0.1:9"  # discard port: nothing listens
    job = enqueue_export(connection, "mlflow", "r2", str(source), {"tracking_uri": dead}, retry_intervals=[0, 0])
    work()
    (o,) = wait_for([job])
    assert o.status == "failed"
    assert "ExportError: MLflow at http://127.0.0.1:9" in (o.error or "") and "Connection refused" in (o.error or "")
    assert _attempts(caplog) == 3  # the first try and two retries


def test_the_same_export_is_enqueued_once(source: Path, connection: redis.Redis, mlflow_uri: str) -> None:
    options = {"tracking_uri": mlflow_uri}
    first = enqueue_export(connection, "mlflow", "r2", str(source), options)
    again = enqueue_export(connection, "mlflow", "r2", str(source), options)
    other = enqueue_export(connection, "mlflow", "r1", str(source), options)
    assert first.id == again.id != other.id
    assert export_queue(connection).count == 2


def test_the_seed_export_manager(source: Path, redis_url: str, work: Callable[[], None], mlflow_uri: str) -> None:
    exporter = ExportManager(str(source), redis_url=redis_url)
    handles = exporter.export_to_mlflow(["r2", "nope"], tracking_uri=mlflow_uri)
    work()
    results = handles.wait(progress=True)  # the rich bars, drawn from job.meta
    assert results["r2"]["success"] and results["r2"]["url"].startswith(mlflow_uri)
    assert not results["nope"]["success"] and "no run 'nope'" in results["nope"]["error"]
    assert [(s, v) for s, v, _ in _history(mlflow_uri, _find(mlflow_uri, "r2", "aquarium").info.run_id, "loss")] == [
        (0, 0.5),
        (1, 0.25),
    ]
    with pytest.raises(ValueError, match="cannot export to neptune"):
        exporter.export_batch(["r2"], platforms=["mlflow", "neptune"])
    exporter.close()


def test_a_changed_param_is_reported_not_changed_and_new_points_are_added(
    source: Path, connection: redis.Redis, work: Callable[[], None], mlflow_uri: str
) -> None:
    options = {"tracking_uri": mlflow_uri}
    with Store(source) as store:
        store.ingest([make_batch(1, [], [], run="r2", params={"lr": 0.1})])
    job = enqueue_export(connection, "mlflow", "r2", str(source), options)
    work()
    assert wait_for([job])[0].status == "finished"
    with Store(source) as store:  # the run goes on: a restart with another lr and two more points
        store.ingest([make_batch(0, [2, 3], [0.125, 0.0625], run="r2", inc="inc-b", params={"lr": 0.5})])
    job = enqueue_export(connection, "mlflow", "r2", str(source), options)
    work()
    (o,) = wait_for([job])
    assert o.report is not None
    (note,) = [n for n in o.report["notes"] if n["what"] == "immutable"]
    assert not note["kept"] and note["examples"] == ["lr: '0.1' stays, '0.5' not logged"]
    assert o.report["fields"]["params"] == {"kept": 0, "not_kept": 1}
    ml_id = _find(mlflow_uri, "r2", "aquarium").info.run_id  # type: ignore[attr-defined]
    assert [(s, v) for s, v, _ in _history(mlflow_uri, ml_id, "loss")] == [(0, 0.5), (1, 0.25), (2, 0.125), (3, 0.0625)]
    meta = job.get_meta(refresh=True)
    assert (meta["done"], meta["total"], meta["run"], meta["target"]) == (4, 4, "r2", "mlflow")


def test_mlflow_telemetry_is_off_in_a_worker_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from aquarium.workers.mlflow_env import quiet_mlflow

    monkeypatch.delenv("MLFLOW_DISABLE_TELEMETRY", raising=False)
    quiet_mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "true"  # its thread mutated os.environ mid-export
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "false")
    quiet_mlflow()
    assert os.environ["MLFLOW_DISABLE_TELEMETRY"] == "false"  # the user's choice stands
