"""MLflow runs created in a real `mlflow server` with MlflowClient, imported, read back equal."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from ledger import CollectorThread
from mlflow import MlflowClient
from mlflow.entities import Metric, Param, RunTag

from aquarium.cli import cli
from aquarium.collector import Api
from aquarium.workers import wait_for
from aquarium.workers.queue import enqueue_import
from aquarium.workers.sources import SourceError, import_run_id
from aquarium.workers.sources.mlflow import MlflowSource

START_MS = 1_700_000_000_123


def make_run(uri: str, experiment: str, name: str, status: str, points: int) -> str:
    client = MlflowClient(uri)
    found = client.get_experiment_by_name(experiment)
    experiment_id = found.experiment_id if found else client.create_experiment(experiment)
    run = client.create_run(experiment_id, start_time=START_MS, run_name=name, tags={"team": "vision"})
    metrics = [Metric("loss", 1.0 / (s + 1), START_MS + 10 * s, s) for s in range(points)]
    metrics += [Metric("acc", math.nan if s == 1 else s / 10, START_MS + 10 * s + 3, s * 2) for s in range(5)]
    for i in range(0, len(metrics), 1000):
        client.log_batch(run.info.run_id, metrics=metrics[i : i + 1000])
    client.log_batch(run.info.run_id, params=[Param("lr", "0.001"), Param("layers", "4")],
                     tags=[RunTag("stage", "prod")])  # fmt: skip
    client.set_terminated(run.info.run_id, status=status, end_time=START_MS + 99_000)
    return str(run.info.run_id)


def test_runs_read_back_equal_through_a_worker_and_twice_is_one_copy(
    mlflow_uri: str, redis_url: str, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    first = make_run(mlflow_uri, "imports", "alpha", "FINISHED", 2500)
    second = make_run(mlflow_uri, "imports", "beta", "FAILED", 3)
    refs = MlflowSource().list_runs(mlflow_uri, {"experiment": "imports"})
    assert refs == sorted([first, second])  # the same start time: by id
    data_dir = tmp_path / "data"
    reports = []
    with CollectorThread(redis_url, data_dir):
        for _ in range(2):
            jobs = [enqueue_import(connection, "mlflow", mlflow_uri, ref, {"api": str(data_dir)}) for ref in refs]
            work()
            outcomes = wait_for(jobs)
            assert [o.status for o in outcomes] == ["finished"] * 2, [o.error for o in outcomes]
            reports.append([o.report for o in outcomes])
    assert reports[0] == reports[1]
    client = MlflowClient(mlflow_uri)
    with Api(data_dir) as api:
        for ref, status in ((first, "completed"), (second, "failed")):
            ml_run = client.get_run(ref)
            run = api.run(import_run_id("mlflow", ref))
            assert (run["name"], run["experiment"], run["status"]) == (ml_run.info.run_name, "imports", status)
            assert run["params"] == ml_run.data.params == {"lr": "0.001", "layers": "4"}
            assert run["tags"] == ml_run.data.tags and run["tags"]["team"] == "vision"
            assert round(run["started_at"] * 1000) == ml_run.info.start_time == START_MS
            assert round(run["ended_at"] * 1000) == ml_run.info.end_time == START_MS + 99_000
            for key in ("loss", "acc"):
                history = client.get_metric_history(ref, key)
                series = api.series(run["id"], key)
                assert run["metrics"][key]["count"] == len(history)  # one copy after two imports
                assert series.steps.tolist() == [m.step for m in history]
                assert [round(t * 1000) for t in series.times.tolist()] == [m.timestamp for m in history]
                got, want = series.values.tolist(), [m.value for m in history]
                assert all(a == b or (math.isnan(a) and math.isnan(b)) for a, b in zip(got, want))
        assert api.run(import_run_id("mlflow", first))["metrics"]["loss"]["count"] == 2500
    (alpha,) = [r for r in reports[0] if r["source_run"] == first]
    notes = {(n["field"], n["what"]): n for n in alpha["notes"]}
    assert notes[("status", "mapped")]["examples"] == ["FINISHED -> completed"]
    assert notes[("points", "NaN")]["count"] == 1 and notes[("params", "strings")]["count"] == 2


def test_an_unreachable_tracking_uri_is_an_error_with_the_reason(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["import", "mlflow", "http://127.0.0.1:9", "--sync", "--data-dir", str(tmp_path)])
    assert result.exit_code == 1 and "MLflow at http://127.0.0.1:9" in result.output


def test_an_unknown_run_or_experiment_is_an_error(mlflow_uri: str) -> None:
    with pytest.raises(SourceError, match="no experiment 'nope'"):
        MlflowSource().list_runs(mlflow_uri, {"experiment": "nope"})
    from aquarium.workers.report import Report

    with pytest.raises(SourceError, match="has no run"):
        MlflowSource().read_run(mlflow_uri, "0" * 32, {}, Report("aquarium", "x"), lambda *a: None)


def test_cli_import_mlflow_sync(mlflow_uri: str, tmp_path: Path) -> None:
    ref = make_run(mlflow_uri, "cli-sync", "gamma", "KILLED", 10)
    data_dir = tmp_path / "data"
    args = ["import", "mlflow", mlflow_uri, "--experiment", "cli-sync", "--sync", "--data-dir", str(data_dir)]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "1 run to import" in result.output and "mlflow " + ref in result.output
    again = CliRunner().invoke(cli, args)
    assert again.exit_code == 0 and "0 new batches" in again.output and "duplicates dropped" in again.output
    with Api(data_dir) as api:
        run = api.run(import_run_id("mlflow", ref))
        assert run["status"] == "killed" and run["metrics"]["loss"]["count"] == 10
