"""The seed's directory format both ways: seed dir -> Aquarium -> seed dir is the same dir.

The seed dirs are written here file by file in the layout and JSON the seed's ExperimentTracker
wrote (``<name>_<id>/`` with metadata.json, hyperparameters.json, metrics.json, artifacts.json,
summary.json, and the artifacts/, plots/, versions/ dirs); Aquarium's own ExperimentTracker has
no file mode.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner
from ledger import CollectorThread

from aquarium.agent.errors import RunNotFoundError
from aquarium.cli import cli
from aquarium.collector import Api, Store
from aquarium.workers import enqueue_export, wait_for
from aquarium.workers.queue import enqueue_import
from aquarium.workers.sources import import_run_id
from aquarium.workers.sources.delivery import SpoolDelivery
from aquarium.workers.sources.importer import run_import
from aquarium.workers.sources.seed import SeedSource

START = datetime(2025, 3, 1, 12, 0, 0, 123456)
END = datetime(2025, 3, 1, 13, 30, 5, 654321)


def write_seed_dir(base: Path, name: str, seed_id: str, params: dict[str, Any], entries: list[dict[str, Any]],
                   status: str = "completed", summary: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """One experiment dir as the seed's tracker left it after ``finish()``."""
    path = base / f"{name}_{seed_id}"
    for directory in ("artifacts", "plots", "versions"):
        (path / directory).mkdir(parents=True)
    metadata = {"start_time": START.isoformat(), "status": status}
    if status in ("completed", "failed"):
        metadata["end_time"] = END.isoformat()
    documents = {"metadata.json": metadata, "hyperparameters.json": params, "metrics.json": entries,
                 "artifacts.json": {}}  # fmt: skip
    if summary is not None:
        documents["summary.json"] = {"experiment_name": name, "experiment_id": seed_id, "metadata": metadata,
                                     "hyperparameters": params, "metrics": summary, "artifacts": []}  # fmt: skip
    for file_name, document in documents.items():
        (path / file_name).write_text(json.dumps(document, indent=2))
    return path


T0 = START.timestamp() + 1.0
ENTRIES = [  # two log_metrics calls per epoch (train, then validation), as a seed user logs them
    {"timestamp": T0 + 0.25, "step": 0, "loss": 0.9, "accuracy": 0.5},
    {"timestamp": T0 + 0.5, "step": 0, "val_loss": 1.0},
    {"timestamp": T0 + 1.25, "step": 1, "loss": 0.7, "accuracy": 0.75},
    {"timestamp": T0 + 1.5, "step": 1, "val_loss": 0.8},
    {"timestamp": T0 + 2.25, "step": 2, "loss": 0.4, "accuracy": 0.625},
    {"timestamp": T0 + 2.5, "step": 2, "val_loss": 0.9},
]
SUMMARY = {  # what the seed's save_experiment_summary computed for ENTRIES (best is always max)
    "latest": {"val_loss": 0.9},
    "best": {"loss": {"value": 0.9, "step": 0, "mode": "max"}, "accuracy": {"value": 0.75, "step": 1, "mode": "max"},
             "val_loss": {"value": 1.0, "step": 0, "mode": "max"}},
}  # fmt: skip
PARAMS = {"learning_rate": 0.001, "batch_size": 32, "optimizer": "adam", "layers": [64, 32], "dropout": None}


@pytest.fixture
def seed_base(tmp_path: Path) -> Path:
    base = tmp_path / "neural_experiments"
    write_seed_dir(base, "mnist_cnn", "a1b2c3d4", PARAMS, ENTRIES, summary=SUMMARY)
    write_seed_dir(base, "run_with_underscores", "0f0f0f0f", {"lr": 0.1}, ENTRIES[:1], status="failed",
                   summary={"latest": {"loss": 0.9, "accuracy": 0.5}, "best": {
                       "loss": {"value": 0.9, "step": 0, "mode": "max"},
                       "accuracy": {"value": 0.5, "step": 0, "mode": "max"}}})  # fmt: skip
    return base


def tree(path: Path) -> dict[str, Any]:
    """Every file and dir under ``path``: JSON files parsed, dirs as None."""
    found: dict[str, Any] = {}
    for item in sorted(path.rglob("*")):
        relative = str(item.relative_to(path))
        found[relative] = json.loads(item.read_text()) if item.suffix == ".json" else None
    return found


def import_offline(base: Path, data_dir: Path) -> list[dict[str, Any]]:
    source = SeedSource()
    reports = [run_import("seed", str(base), ref, {}, SpoolDelivery(data_dir), lambda *a: None)
               for ref in source.list_runs(str(base), {})]  # fmt: skip
    with Store(data_dir) as store:
        store.ingest_spool()
    return reports


def test_seed_dir_to_aquarium_and_back_is_the_same_dir(seed_base: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    reports = import_offline(seed_base, data_dir)
    assert [r["source_run"] for r in reports] == sorted(str(p) for p in seed_base.iterdir())
    run_id = import_run_id("seed", "mnist_cnn_a1b2c3d4")
    with Api(data_dir) as api:
        run = api.run(run_id)
        assert run["name"] == "mnist_cnn" and run["experiment"] == "mnist_cnn" and run["status"] == "completed"
        assert run["started_at"] == START.timestamp() and run["ended_at"] == END.timestamp()
        assert run["params"] == PARAMS
        loss = api.series(run_id, "loss")
        assert loss.steps.tolist() == [0, 1, 2] and loss.values.tolist() == [0.9, 0.7, 0.4]
    out = tmp_path / "out"
    for run_id in (import_run_id("seed", p.name) for p in seed_base.iterdir()):
        job_report = _export_here(data_dir, run_id, out)
        assert job_report["fields"]["points"]["not_kept"] == 0
    assert tree(out) == tree(seed_base)


def _export_here(data_dir: Path, run_id: str, out: Path) -> dict[str, Any]:
    from aquarium.workers import run_export

    return run_export("seed", run_id, str(data_dir), {"out": str(out)})


def test_an_aquarium_run_exported_as_a_seed_dir_reads_like_the_seeds(tmp_path: Path) -> None:
    """A run logged to Aquarium (two ranks, NaN, tags) in the seed's format, through a worker."""
    from batches import make_batch

    data_dir = tmp_path / "data"
    with Store(data_dir) as store:
        store.ingest([
            make_batch(0, [0, 1, 2], [1.0, math.nan, 3.0], run="r_1", meta={"name": "native"},
                       params={"lr": 0.5}, tags={"team": "x"}, status=[("running", 1.7e9), ("completed", 1.7e9 + 9)]),
            make_batch(0, [0, 1], [5.0, 6.0], run="r_1", rank=1),
        ])  # fmt: skip
    out = tmp_path / "out"
    report = _export_here(data_dir, "r_1", out)
    (path,) = out.iterdir()
    assert path.name == "native_r-1"  # the seed reads the id after the last "_"
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["status"] == "completed" and metadata["end_time"] == datetime.fromtimestamp(1.7e9 + 9).isoformat()
    assert set(metadata) == {"start_time", "status", "end_time"}  # no start time logged: when Aquarium saw the run
    entries = json.loads((path / "metrics.json").read_text())
    assert entries[0] == {"timestamp": 1.7e9, "step": 0, "loss": 1.0, "loss/rank1": 5.0}
    assert math.isnan(entries[1]["loss"]) and entries[1]["loss/rank1"] == 6.0
    notes = {(n["field"], n["what"]): n for n in report["notes"]}
    assert notes[("tags", "no tags")]["kept"] is False and report["fields"]["tags"]["not_kept"] == 1
    assert notes[("points", "rank")]["count"] == 2 and notes[("points", "NaN")]["count"] == 1
    summary = json.loads((path / "summary.json").read_text())
    assert summary["experiment_id"] == "r-1" and summary["metrics"]["best"]["loss/rank1"]["value"] == 6.0


def test_import_through_a_worker_and_a_collector_twice_is_one_copy(
    seed_base: Path, redis_url: str, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    ref = str((seed_base / "mnist_cnn_a1b2c3d4").resolve())
    run_id = import_run_id("seed", "mnist_cnn_a1b2c3d4")
    reports = []
    with CollectorThread(redis_url, data_dir) as running:
        for _ in range(2):
            job = enqueue_import(connection, "seed", str(seed_base), ref, {"api": str(data_dir)})
            work()
            (o,) = wait_for([job])
            assert o.status == "finished", o.error
            assert job.get_meta(refresh=True)["phase"] == "committed"  # progress in job.meta, to the commit
            reports.append(o.report)
        assert running.collector.stats.entries == 2 * reports[0]["batches"]
    assert reports[0] == reports[1]  # the same report, the same batches, the same digest
    with Api(data_dir) as api:
        run = api.run(run_id)
        assert {k: m["count"] for k, m in run["metrics"].items()} == {"loss": 3, "accuracy": 3, "val_loss": 3}
        (inc,) = run["incarnations"]
        assert inc["incarnation"] == "import" and inc["batches"] == reports[0]["batches"] and inc["missing"] == 0
        assert run["started_at"] == START.timestamp() and run["ended_at"] == END.timestamp()


def test_a_dir_without_metadata_json_fails_naming_it_and_the_others_are_imported(
    seed_base: Path, tmp_path: Path
) -> None:
    broken = write_seed_dir(seed_base, "broken", "deadbeef", {"lr": 1}, ENTRIES)
    (broken / "metadata.json").unlink()
    bad_json = write_seed_dir(seed_base, "garbled", "cafecafe", {"lr": 1}, ENTRIES)
    (bad_json / "metrics.json").write_text('[{"step": 0, "loss": 1.0}, ')
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(cli, ["import", "seed", str(seed_base), "--sync", "--data-dir", str(data_dir)])
    assert result.exit_code == 1
    assert f"{broken / 'metadata.json'} is missing" in result.output
    assert f"{bad_json / 'metrics.json'} is not readable JSON" in result.output
    assert "2 imports of 4 failed" in result.output
    with Api(data_dir) as api:
        assert api.run(import_run_id("seed", "mnist_cnn_a1b2c3d4"))["status"] == "completed"
        for name in ("broken_deadbeef", "garbled_cafecafe"):
            with pytest.raises(RunNotFoundError):
                api.run(import_run_id("seed", name))


def test_values_and_names_aquarium_cannot_take_are_reported(tmp_path: Path) -> None:
    base = tmp_path / "seed"
    entries = [{"timestamp": T0, "step": 0, "loss": math.nan, "acc": "n/a", "x" * 300: 1.0, "bad\nname": 2.0},
               {"timestamp": T0 + 1, "step": 1, "loss": math.inf}]  # fmt: skip
    write_seed_dir(base, "odd", "12345678", {"model": {"depth": 3, "act": "relu"}, "big": "y" * 70_000}, entries)
    (report,) = import_offline(base, tmp_path / "data")
    notes = {(n["field"], n["what"]): n for n in report["notes"]}
    assert notes[("points", "not a number")]["kept"] is False and report["fields"]["points"]["not_kept"] == 1
    assert notes[("points", "NaN")]["count"] == 1 and notes[("points", "Inf")]["count"] == 1
    assert notes[("points", "renamed")]["count"] == 2
    assert notes[("params", "flattened")]["examples"] == ["model.depth", "model.act"]
    assert notes[("params", "truncated")]["examples"] == ["big"]
    with Api(tmp_path / "data") as api:
        run = api.run(report["run"])
        assert run["params"]["model.depth"] == 3 and len(run["params"]["big"]) == 65536
        assert set(api.keys(report["run"])) == {"loss", "x" * 250, "bad_name"}
        assert api.series(report["run"], "loss").values[1] == math.inf


def test_cli_export_seed_and_import_seed_through_a_worker(seed_base: Path, redis_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with CollectorThread(redis_url, data_dir):
        base = ["--data-dir", str(data_dir), "--redis-url", redis_url]
        queued = CliRunner().invoke(cli, ["import", "seed", str(seed_base), "--no-wait", *base])
        assert queued.exit_code == 0 and queued.output.count("import-seed-") == 2, queued.output
        worked = CliRunner().invoke(cli, ["worker", "--burst", "--redis-url", redis_url], catch_exceptions=False)
        assert worked.exit_code == 0
    out = tmp_path / "back"
    ids = [import_run_id("seed", p.name) for p in seed_base.iterdir()]
    exported = CliRunner().invoke(cli, ["export", "seed", *ids, "--sync", "--data-dir", str(data_dir),
                                        "--out", str(out)])  # fmt: skip
    assert exported.exit_code == 0, exported.output
    assert tree(out) == tree(seed_base)


def test_an_unwritable_out_dir_fails_with_the_reason(seed_base: Path, redis_url: str, connection: redis.Redis,
                                                     work: Callable[[], None], tmp_path: Path) -> None:  # fmt: skip
    data_dir = tmp_path / "data"
    import_offline(seed_base, data_dir)
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    job = enqueue_export(connection, "seed", import_run_id("seed", "mnist_cnn_a1b2c3d4"), str(data_dir),
                         {"out": str(blocker / "x")})  # fmt: skip
    work()
    (o,) = wait_for([job])
    assert o.status == "failed" and f"cannot write under {blocker / 'x'}" in (o.error or "")


def test_the_python_api_imports_queued_and_in_process_and_twice_is_one_copy(
    seed_base: Path, redis_url: str, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    from aquarium.workers import import_runs

    queued_dir, here_dir = tmp_path / "queued", tmp_path / "here"
    with CollectorThread(redis_url, queued_dir):
        for _ in range(2):  # importing twice is one copy
            jobs = import_runs("seed", str(seed_base), redis_url=redis_url, data_dir=queued_dir, wait=False)
            assert len(jobs) == 2  # one job per <name>_<id>/ dir
            work()
            outcomes = wait_for(jobs, timeout=60)
            assert [o.status for o in outcomes] == ["finished", "finished"], [o.error for o in outcomes]
    for _ in range(2):
        here = import_runs("seed", str(seed_base), data_dir=here_dir, sync=True)
        assert [o.status for o in here] == ["finished", "finished"]
    run_id = import_run_id("seed", "mnist_cnn_a1b2c3d4")
    with Api(queued_dir) as queued, Api(here_dir) as local:
        assert queued.search().total == local.search().total == 2
        assert queued.run(run_id)["metrics"] == local.run(run_id)["metrics"]
        assert local.run(run_id)["metrics"]["loss"]["count"] == 3
