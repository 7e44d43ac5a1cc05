"""`aquarium export ... --sync`, and through the queue with `aquarium worker --burst`."""

from __future__ import annotations

import csv
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from mlflow import MlflowClient

from aquarium.cli import cli
from aquarium.workers import export_queue


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_json_sync_is_one_document_with_every_point(source: Path, tmp_path: Path) -> None:
    out = tmp_path / "r1.json"
    output = _invoke("export", "json", "r1", "--sync", "--data-dir", str(source), "--out", str(out))
    assert "r1 → json" in output and "points" in output
    document = json.loads(out.read_text())
    assert document["run"]["params"]["lr"] == 0.001 and document["run"]["status"] == "terminated"
    series = {(s["key"], s["rank"]): s["points"] for s in document["series"]}
    assert series[("odd", 0)] == [[0, 1.0, 1.7e9], [1, "NaN", 1.7e9 + 1e-3], [2, "Infinity", 1.7e9 + 2e-3],
                                  [3, "-Infinity", 1.7e9 + 3e-3]]  # fmt: skip
    assert len(series[("loss", 0)]) == 500 and series[("loss", 1)][2] == [2, 5.0, 1.7e9 + 2e-3]


def test_csv_long_and_wide_by_filter(source: Path, tmp_path: Path) -> None:
    _invoke("export", "csv", "--filter", "name == 'alpha'", "--sync", "--data-dir", str(source), "--out", str(tmp_path))
    rows = list(csv.reader((tmp_path / "r1.csv").read_text().splitlines()))
    assert rows[0] == ["run", "key", "rank", "step", "value", "time"] and len(rows) == 1 + 507
    assert ["r1", "odd", "0", "1", "nan", repr(1.7e9 + 1e-3)] in rows
    wide = tmp_path / "wide.csv"
    output = _invoke("export", "csv", "r1", "--wide", "--sync", "--data-dir", str(source), "--out", str(wide))
    assert "NOT KEPT" in output  # params, tags, status and point times are not in a wide CSV
    table = list(csv.reader(wide.read_text().splitlines()))
    assert table[0] == ["step", "loss", "loss/rank1", "odd"] and len(table) == 501
    assert table[4] == ["3", repr(3 / 7), "", "-inf"] and float(table[2][3]) != float(table[2][3])  # NaN


def test_an_unknown_run_is_an_error(source: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["export", "json", "nope", "--sync", "--data-dir", str(source), "--out", "x"])
    assert result.exit_code == 1 and "nope" in result.output


def test_mlflow_through_a_worker(source: Path, redis_url: str, mlflow_uri: str, work: Callable[[], None]) -> None:
    base = ["export", "mlflow", "r2", "--data-dir", str(source), "--redis-url", redis_url, "--tracking-uri", mlflow_uri]
    queued = _invoke(*base, "--no-wait")
    assert "export-mlflow-" in queued and "queued" in queued
    _invoke("worker", "--burst", "--redis-url", redis_url)
    outputs: list[str] = []
    waiting = threading.Thread(target=lambda: outputs.append(_invoke(*base)))  # enqueues again, then waits
    waiting.start()
    connection = redis.Redis.from_url(redis_url)
    while waiting.is_alive() and not export_queue(connection).count:
        time.sleep(0.05)
    work()  # in the main thread (RQ installs signal handlers), not in a CliRunner: it swaps sys.stdout
    waiting.join(30)
    connection.close()
    (output,) = outputs
    assert "r2 → mlflow" in output
    client = MlflowClient(mlflow_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("aquarium").experiment_id])
    assert [(m.step, m.value) for m in client.get_metric_history(run.info.run_id, "loss")] == [(0, 0.5), (1, 0.25)]
    assert run.info.status == "FINISHED"


@pytest.mark.parametrize("command", ["mlflow", "tensorboard", "json", "csv"])
def test_export_commands_have_help(command: str) -> None:
    assert "Usage" in _invoke("export", command, "--help")
