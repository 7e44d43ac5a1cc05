"""The training-side API: module-level functions bound to the current run, context manager."""

from __future__ import annotations

import contextvars
from pathlib import Path

import pytest

import aquarium.agent as aq
from aquarium.agent.errors import NoActiveRunError
from aquarium.collector import Store


def test_module_level_functions_use_the_current_run(data_dir: Path) -> None:
    run = aq.init(experiment="resnet", name="lr-1e-3", config={"lr": 1e-3, "batch_size": 32}, mode="offline")
    assert aq.current_run() is run
    for step in range(5):
        aq.log({"loss": 1.0 / (step + 1)})
    aq.log_params({"optimizer": {"name": "adam"}})
    aq.set_tags(["baseline"])
    aq.set_status("completed")
    report = aq.finish()
    assert report.points == 5 and report.dropped_points == 0
    with pytest.raises(NoActiveRunError):
        aq.log({"loss": 0.0})
    with Store(data_dir) as store:
        stored = store.get_run(run.id)
    assert stored["name"] == "lr-1e-3" and stored["experiment"] == "resnet" and stored["status"] == "completed"
    assert stored["params"] == {"lr": 1e-3, "batch_size": 32, "optimizer.name": "adam"}
    assert stored["tags"] == {"baseline": ""} and stored["metrics"]["loss"]["count"] == 5
    assert stored["metrics"]["loss"]["last_step"] == 4  # steps default to previous + 1


def test_context_manager_marks_failures(data_dir: Path) -> None:
    with pytest.raises(ZeroDivisionError):
        with aq.init(experiment="e", mode="offline") as run:
            run.log({"x": 1.0})
            1 / 0
    with aq.init(experiment="e", mode="offline") as ok:
        ok.log({"x": 1.0})
    with Store(data_dir) as store:
        assert store.get_run(run.id)["status"] == "failed"
        assert store.get_run(ok.id)["status"] == "completed"


def test_current_run_is_per_context(data_dir: Path) -> None:
    outer = aq.init(experiment="e", mode="offline")

    def inner() -> str:
        run = aq.init(experiment="e", mode="offline")
        run.finish()
        return run.id

    inner_id = contextvars.copy_context().run(inner)
    assert aq.current_run() is outer and inner_id != outer.id
    outer.finish()


def test_ranks_of_one_job_join_one_run(data_dir: Path) -> None:
    runs = [aq.init(experiment="ddp", run_id="job-42", rank=r, world_size=3, mode="offline") for r in range(3)]
    for r, run in enumerate(runs):
        for step in range(10):
            run.log({"loss": float(step * 10 + r)}, step=step)
        run.finish()
    with Store(data_dir) as store:
        stored = store.get_run("job-42")
        assert stored["ranks"] == [0, 1, 2] and stored["world_size"] == 3
        assert stored["metrics"]["loss"]["count"] == 30
        assert store.read_series("job-42", "loss", rank=2).values.tolist() == [float(s * 10 + 2) for s in range(10)]
        assert store.read_aggregate("job-42", "loss").mean.tolist() == [float(s * 10 + 1) for s in range(10)]
