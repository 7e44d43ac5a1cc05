"""The seed's API keeps working: ExperimentTracker and ExperimentManager."""

from __future__ import annotations

import json
from pathlib import Path

from aquarium.agent import ExperimentTracker
from aquarium.collector import ExperimentManager


def test_seed_quick_start(tmp_path: Path) -> None:
    tracker = ExperimentTracker(experiment_name="my_experiment", base_dir=tmp_path, mode="offline")
    tracker.log_hyperparameters({"learning_rate": 0.001, "batch_size": 32, "epochs": 10})
    for epoch in range(10):
        tracker.log_metrics({"loss": 1.0 - epoch * 0.1, "accuracy": epoch * 0.1}, step=epoch)
    tracker.log_metrics({"val_loss": 0.5}, step=9)
    assert tracker.get_metrics("loss") == [1.0 - e * 0.1 for e in range(10)]
    assert tracker.get_metrics("missing") == []
    assert tracker.get_best_metric("loss", mode="min") == (0.1, 9)
    assert tracker.get_best_metric("accuracy", mode="max") == (0.9, 9)
    assert tracker.get_best_metric("missing") == (None, None)
    entries = tracker.get_metrics()
    assert len(entries) == 11 and entries[0]["step"] == 0 and entries[0]["loss"] == 1.0
    assert entries[-1] == {"timestamp": entries[-1]["timestamp"], "step": 9, "val_loss": 0.5}
    tracker.set_status("completed")
    summary = json.loads(Path(tracker.save_experiment_summary()).read_text())
    assert summary["experiment_name"] == "my_experiment" and summary["experiment_id"] == tracker.experiment_id
    assert summary["hyperparameters"]["batch_size"] == 32
    assert summary["metrics"]["best"]["accuracy"] == {"value": 0.9, "step": 9, "mode": "max"}
    assert summary["metrics"]["latest"] == {"val_loss": 0.5}
    assert summary["metadata"]["status"] == "completed" and "end_time" in summary["metadata"]
    tracker.finish()

    manager = ExperimentManager(base_dir=tmp_path)
    listed = manager.list_experiments()
    assert [(e["experiment_id"], e["experiment_name"], e["status"]) for e in listed] == [
        (tracker.experiment_id, "my_experiment", "completed")
    ]
    experiment = manager.get_experiment(tracker.experiment_id)
    assert experiment is not None
    assert experiment.get_best_metric("accuracy", mode="max") == (0.9, 9)
    assert experiment.get_metrics("loss") == tracker.get_metrics("loss")
    assert experiment.hyperparameters == {"learning_rate": 0.001, "batch_size": 32, "epochs": 10}
    assert manager.get_experiment("no-such-id") is None
    comparison = manager.compare_experiments([tracker.experiment_id, "no-such-id"], ["loss"])
    assert comparison["comparison_loss"][tracker.experiment_id]["values"] == tracker.get_metrics("loss")
    assert manager.delete_experiment(tracker.experiment_id) is True
    assert manager.delete_experiment(tracker.experiment_id) is False
    assert manager.list_experiments() == []
    manager.close()


def test_default_step_is_the_number_of_calls(tmp_path: Path) -> None:
    tracker = ExperimentTracker("steps", base_dir=tmp_path, mode="offline")
    for value in (3.0, 1.0, 2.0):
        tracker.log_metrics({"loss": value})
    assert tracker.get_best_metric("loss", mode="min") == (1.0, 1)
    tracker.finish()
    with ExperimentManager(tmp_path) as manager:
        experiment = manager.get_experiment(tracker.experiment_id)
        assert experiment is not None and [e["step"] for e in experiment.metrics_history] == [0, 1, 2]


def test_compare_two_experiments_includes_hyperparameters(tmp_path: Path) -> None:
    ids = []
    for lr in (0.1, 0.01):
        tracker = ExperimentTracker(f"lr-{lr}", base_dir=tmp_path, mode="offline")
        tracker.log_hyperparameters({"lr": lr})
        tracker.log_metrics({"acc": lr * 5}, step=0)
        tracker.finish()
        ids.append(tracker.experiment_id)
    with ExperimentManager(tmp_path) as manager:
        comparison = manager.compare_experiments(ids)
        assert comparison["hyperparameter_comparison"] == {ids[0]: {"lr": 0.1}, ids[1]: {"lr": 0.01}}
        assert {k: v["values"] for k, v in comparison["comparison_acc"].items()} == {ids[0]: [0.5], ids[1]: [0.05]}
