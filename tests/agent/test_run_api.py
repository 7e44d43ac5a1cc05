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
        store.ingest_spool()
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
        store.ingest_spool()
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
        store.ingest_spool()
        stored = store.get_run("job-42")
        assert stored["ranks"] == [0, 1, 2] and stored["world_size"] == 3
        assert stored["metrics"]["loss"]["count"] == 30
        assert store.read_series("job-42", "loss", rank=2).values.tolist() == [float(s * 10 + 2) for s in range(10)]
        assert store.read_aggregate("job-42", "loss").mean.tolist() == [float(s * 10 + 1) for s in range(10)]


def test_threads_logging_to_one_run_keep_every_point_with_its_own_step(data_dir: Path) -> None:
    import sys
    import threading

    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: interleavings show up

    run = aq.init(experiment="threads", mode="offline")
    barrier = threading.Barrier(4)

    def worker(index: int) -> None:
        barrier.wait()
        for step in range(3000):
            keys = {f"t{index}": float(step * 10 + index)}
            if step % 7 == 0:
                keys["shared"] = float(index)  # a key several threads log, with different key sets
            run.log(keys, step=step)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    worker(3)  # the run's own thread logs at the same time
    for thread in threads:
        thread.join()
    sys.setswitchinterval(previous)
    report = run.finish()
    assert report.dropped_points == 0
    with Store(data_dir) as store:
        store.ingest_spool()
        for index in range(4):
            series = store.read_series(run.id, f"t{index}")
            assert series.steps.tolist() == list(range(3000))
            assert series.values.tolist() == [float(s * 10 + index) for s in range(3000)]
        assert store.get_run(run.id)["metrics"]["shared"]["count"] == 4 * len(range(0, 3000, 7))
