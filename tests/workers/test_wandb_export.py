"""W&B offline run dirs, read back through wandb's own Record protobuf (aquarium.workers.wandb_files).

wandb never goes online here: no API key, WANDB_MODE=offline, WANDB_DIR under tmp. Its service
process starts once per test process (about a second), so the tests are few and each checks much.
"""

from __future__ import annotations

import math
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import redis
from batches import make_batch
from click.testing import CliRunner
from ledger import wait_until

from aquarium.cli import cli
from aquarium.collector import Store
from aquarium.workers import ExportError, ExportManager, Report, enqueue_export, wait_for
from aquarium.workers.targets import Series
from aquarium.workers.targets.wandb import WandbTarget, wandb_id
from aquarium.workers.wandb_files import WandbFileError, read_run, run_dirs


@pytest.fixture(autouse=True)
def offline_wandb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb-default"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb-config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb-cache"))
    yield


def test_history_config_summary_tags_read_back_and_a_reexport_replaces(
    source: Path, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    options = {"dir": str(out), "project": "proj", "tags": ["v1.0"]}
    reports = []
    for _ in range(2):
        job = enqueue_export(connection, "wandb", "r1", str(source), options)
        work()
        (o,) = wait_for([job])
        assert o.status == "finished", o.error
        reports.append(o.report)
    (run_dir,) = run_dirs(out)  # the second export replaced the first: one dir to sync
    assert [p.name for p in (out / "wandb").iterdir() if p.name.startswith(".")] == []  # no scratch left
    assert reports[1] is not None and reports[1]["destination"] == str(run_dir)
    run = read_run(run_dir)
    assert (run.run_id, run.project, run.name, run.group) == ("r1", "proj", "alpha", "exp1")
    assert run.tags == ["v1.0", "prod", "team:vision"] and run.complete and run.exit_code == 143
    assert run.config == {"lr": 0.001, "layers": 4, "long": "x" * 7000, "bad key!": [1, 2]}
    assert [row.step for row in run.history] == list(range(500))  # one row per step, in order
    assert [row.values["loss"] for row in run.history] == [s / 7 for s in range(500)]
    assert run.history[3].timestamp == pytest.approx(1.7e9 + 3e-3)
    first = run.history[0].values
    assert first == {"loss": 0.0, "loss/rank1": 3.0, "odd": 1.0}  # every metric of the step together
    odd = [row.values["odd"] for row in run.history[:4]]
    assert math.isnan(odd[1]) and odd[2] == math.inf and odd[3] == -math.inf
    assert run.summary["loss"] == 499 / 7 and run.summary["loss/rank1"] == 5.0
    assert run.summary["aquarium"]["status"] == "terminated" and run.summary["aquarium"]["ended_at"] == 1.7e9 + 9.5
    report = reports[0]
    assert report is not None and report == reports[1] | {"destination": report["destination"]}
    assert report["fields"]["points"] == {"kept": 507, "not_kept": 0}
    notes = {(n["field"], n["what"]): n for n in report["notes"]}
    assert notes[("points", "NaN")]["count"] == 1 and notes[("points", "Inf")]["count"] == 2
    assert notes[("points", "rank")]["count"] == 3
    assert notes[("status", "exit code")]["examples"] == ["terminated -> 143"]
    synced = subprocess.run(
        [sys.executable, "-m", "wandb", "sync", "--dry-run", str(run_dir)], capture_output=True, text=True, timeout=60
    )
    assert "Would sync 1 run(s)" in synced.stdout + synced.stderr  # wandb's own CLI takes the dir


def test_what_wandb_refuses_is_reported(source: Path, tmp_path: Path) -> None:
    """Negative steps, two values of one key at one step, W&B's own key names; a run W&B's SDK
    wrote directly reads back the same way."""
    with Store(source) as store:
        store.ingest(
            [
                make_batch(0, [-2, -1, 0, 1], [9.0, 8.0, 1.0, 2.0], run="r3", key="_step", meta={"name": "gamma"}),
                make_batch(1, [1], [7.0], run="r3", key="_step", inc="inc-b"),
            ]
        )
    from aquarium.workers import run_export

    report = run_export("wandb", "r3", str(source), {"dir": str(tmp_path / "out")})
    (run_dir,) = run_dirs(tmp_path / "out")
    run = read_run(run_dir)
    assert [(row.step, row.values) for row in run.history] == [
        (0, {"aquarium/_step": 1.0}),
        (1, {"aquarium/_step": 7.0}),
    ]
    notes = {(n["field"], n["what"]): n for n in report["notes"]}
    assert notes[("points", "negative step")]["count"] == 2 and not notes[("points", "negative step")]["kept"]
    assert notes[("points", "renamed")]["examples"] == ["_step -> aquarium/_step"]
    assert report["fields"]["points"] == {"kept": 2, "not_kept": 2}

    class Logged:  # a series holding one step twice (the store resolves restarts, a series may not)
        rows: list[tuple[int, dict[str, float]]] = []

        def log(self, row: dict[str, float], step: int, commit: bool) -> None:
            self.rows.append((step, row))

    twice = Series("k", 0, np.array([0, 1, 1]), np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 3.0]))
    logged, other = Logged(), Report("wandb", "x")
    WandbTarget()._history(logged, None, [twice], other, lambda *a: None, 0, 3)
    assert logged.rows == [(0, {"k": 1.0, "_timestamp": 1.0}), (1, {"k": 3.0, "_timestamp": 3.0})]
    assert other.fields["points"].kept == 2 and other.fields["points"].not_kept == 1
    with pytest.raises(ExportError, match="the W&B mode is online or offline, not 'cloud'"):
        run_export("wandb", "r3", str(source), {"dir": str(tmp_path / "out"), "mode": "cloud"})
    assert wandb_id("r3") == "r3" and wandb_id("a/b") != wandb_id("a_b") and "/" not in wandb_id("a/b")

    import wandb

    direct = wandb.init(mode="offline", id="direct", project="p", dir=str(tmp_path / "direct"), config={"a": 1})
    direct.log({"x": 1.5}, step=2)
    direct.finish()
    (direct_dir,) = run_dirs(tmp_path / "direct")
    # wandb's service process may still be writing the run log when finish() returns
    back = wait_until(lambda: (r := read_run(direct_dir)).run_id and r.history and r, "the direct run's log written")
    assert (back.run_id, back.config, [(r.step, r.values) for r in back.history]) == (
        "direct",
        {"a": 1},
        [(2, {"x": 1.5})],
    )
    wandb_file = next(direct_dir.glob("*.wandb"))
    wandb_file.write_bytes(b"not a wandb file")
    with pytest.raises(WandbFileError, match="not a W&B run log"):
        read_run(direct_dir)


def test_seed_api_per_rank_and_the_cli(source: Path, redis_url: str, work: Callable[[], None], tmp_path: Path) -> None:
    exporter = ExportManager(str(source), redis_url=redis_url)
    handles = exporter.export_to_wandb(
        ["r1"], project_name="my-project", tags=["production"], wandb_dir=str(tmp_path / "a"), per_rank=True
    )
    work()
    results = handles.wait(progress=False)
    exporter.close()
    assert results["r1"]["success"], results["r1"]["error"]
    runs = {r.run_id: r for r in map(read_run, run_dirs(tmp_path / "a"))}
    assert sorted(runs) == ["r1-rank0", "r1-rank1"]
    assert [row.values for row in runs["r1-rank1"].history] == [{"loss": 3.0}, {"loss": 4.0}, {"loss": 5.0}]
    assert runs["r1-rank1"].group == "r1" and runs["r1-rank0"].project == "my-project"

    result = CliRunner().invoke(
        cli, ["export", "wandb", "r2", "--sync", "--offline", "--data-dir", str(source), "--dir", str(tmp_path / "b")]
    )
    assert result.exit_code == 0, result.output
    assert "r2 → wandb" in result.output
    (run,) = map(read_run, run_dirs(tmp_path / "b"))
    assert [(row.step, row.values) for row in run.history] == [(0, {"loss": 0.5}), (1, {"loss": 0.25})]
    assert run.project == "aquarium" and run.exit_code == 0

    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    result = CliRunner().invoke(
        cli, ["export", "wandb", "r2", "--sync", "--data-dir", str(source), "--dir", str(blocker)]
    )
    assert result.exit_code != 0 and f"cannot write under {blocker}" in result.output
