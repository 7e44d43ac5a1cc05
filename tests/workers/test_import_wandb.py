"""W&B offline run dirs written by wandb itself (offline mode, no API key), imported, read back."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from ledger import wait_until

from aquarium.agent.errors import RunNotFoundError
from aquarium.cli import cli
from aquarium.collector import Api
from aquarium.workers import enqueue_export, wait_for
from aquarium.workers.sources import import_run_id
from aquarium.workers.sources.wandb import WandbSource
from aquarium.workers.wandb_files import read_run, run_dirs


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-default"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    yield


def write_wandb_run(directory: Path) -> None:
    import wandb

    run = wandb.init(dir=str(directory), project="proj", id="abc123", name="first", mode="offline",
                     config={"lr": 0.01, "model": {"depth": 3}}, tags=["baseline", "team:nlp"])  # fmt: skip
    for step in range(50):
        run.log({"loss": 1.0 / (step + 1), "note": "text"} if step == 3 else {"loss": 1.0 / (step + 1)}, step=step)
    run.log({"acc": math.nan}, step=50)
    run.summary["best"] = 0.5
    run.finish()
    # wandb's service may still be writing the log when finish() returns: wait for its exit record
    wait_until(lambda: any(read_run(d).finished for d in run_dirs(directory / "wandb")), "the W&B log is complete")


def test_an_offline_run_imports_with_config_history_tags_and_status(tmp_path: Path) -> None:
    write_wandb_run(tmp_path / "w")
    (ref,) = WandbSource().list_runs(str(tmp_path / "w"), {})
    data_dir = tmp_path / "data"
    args = ["import", "wandb", str(tmp_path / "w"), "--sync", "--data-dir", str(data_dir)]
    for _ in range(2):
        result = CliRunner().invoke(cli, args, env={"COLUMNS": "250"})  # the notes unfolded, to find them
        assert result.exit_code == 0, result.output
    assert "0 new batches" in result.output  # the second import: every batch a duplicate
    with Api(data_dir) as api:
        run = api.run(import_run_id("wandb", "proj/abc123"))
        assert (run["name"], run["experiment"], run["status"]) == ("first", "proj", "completed")
        assert run["params"] == {"lr": 0.01, "model.depth": 3}
        assert run["tags"] == {"baseline": "", "team": "nlp"}
        assert run["started_at"] is not None and run["ended_at"] >= run["started_at"]
        loss = api.series(run["id"], "loss")
        assert loss.steps.tolist() == list(range(50)) and loss.values.tolist() == [1.0 / (s + 1) for s in range(50)]
        assert run["metrics"]["loss"]["count"] == 50 and math.isnan(api.series(run["id"], "acc").values[0])
        assert all(run["started_at"] <= t <= run["ended_at"] + 1 for t in loss.times.tolist())
    assert "not a number" in result.output and "summary only" in result.output and ref


def test_an_aquarium_wandb_export_imports_back(
    source: Path, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    job = enqueue_export(connection, "wandb", "r1", str(source), {"dir": str(out), "project": "proj"})
    work()
    assert wait_for([job])[0].status == "finished"
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(cli, ["import", "wandb", str(out), "--sync", "--data-dir", str(data_dir)])
    assert result.exit_code == 0, result.output
    with Api(source) as original, Api(data_dir) as imported:
        was, now = original.run("r1"), imported.run(import_run_id("wandb", "proj/r1"))
        assert (now["name"], now["experiment"], now["status"]) == ("alpha", "exp1", "terminated")
        assert now["tags"] == was["tags"] and now["params"]["lr"] == was["params"]["lr"]
        assert imported.series(now["id"], "loss").values.tolist() == original.series("r1", "loss").values.tolist()


def test_a_corrupt_run_log_fails_naming_the_file_and_stores_nothing(tmp_path: Path) -> None:
    write_wandb_run(tmp_path / "w")
    (ref,) = WandbSource().list_runs(str(tmp_path / "w"), {})
    (log,) = Path(ref).glob("*.wandb")
    data = bytearray(log.read_bytes())
    assert len(data) > 200, (len(data), sorted(p.name for p in Path(ref).iterdir()))
    data[200] ^= 0xFF
    log.write_bytes(bytes(data))
    data_dir = tmp_path / "data"
    result = CliRunner().invoke(cli, ["import", "wandb", str(tmp_path / "w"), "--sync", "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and f"{log}: bad checksum" in result.output
    assert not list(data_dir.rglob("*.spool"))  # nothing was sent: the whole run is read before anything is
    if (data_dir / "aquarium.db").exists():
        with Api(data_dir) as api, pytest.raises(RunNotFoundError):
            api.run(import_run_id("wandb", "proj/abc123"))
