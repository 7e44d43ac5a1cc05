"""The seed's ``ExperimentManager``, reading the store.

In the seed an "experiment" is one tracked run: ``experiment_id`` is the run id and
``experiment_name`` the name its tracker was given. Dicts carry the seed's keys.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from aquarium.agent import ExperimentTracker
from aquarium.agent.compat import MetricHistoryReads
from aquarium.agent.errors import RunNotFoundError

from .store import Store


def _iso(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp).isoformat() if timestamp else None


class StoredExperiment(MetricHistoryReads):
    """A finished or running experiment read back from the store (rank 0's history)."""

    def __init__(self, store: Store, run: dict[str, Any]) -> None:
        self._store = store
        self.experiment_id: str = run["id"]
        self.experiment_name: str = run["name"]
        self.hyperparameters: dict[str, Any] = run["params"]
        self.tags: dict[str, str] = run["tags"]
        self.metadata: dict[str, Any] = {
            "start_time": _iso(run["started_at"] or run["created_at"]),
            "status": run["status"],
        }
        if run["ended_at"]:
            self.metadata["end_time"] = _iso(run["ended_at"])
        self.summary = run["metrics"]

    def _key_names(self) -> list[str]:
        return self._store.metric_keys(self.experiment_id)

    def _series(self, key: str) -> tuple[list[int], list[float]]:
        series = self._store.read_series(self.experiment_id, key)
        return series.steps.tolist(), series.values.tolist()

    def _entries(self) -> list[dict[str, Any]]:
        by_step: dict[int, dict[str, Any]] = {}
        for key in self._key_names():
            series = self._store.read_series(self.experiment_id, key)
            for step, value, at in zip(series.steps.tolist(), series.values.tolist(), series.times.tolist()):
                entry = by_step.setdefault(step, {"timestamp": at, "step": step})
                entry[key] = value
        return [by_step[s] for s in sorted(by_step)]

    @property
    def metrics_history(self) -> list[dict[str, Any]]:
        return self._entries()

    @property
    def artifacts(self) -> list[dict[str, Any]]:
        """What the experiment logged with ``log_artifact``/``log_model``/``log_figure``, in order:
        name, kind, size, sha256, state, ... (``aquarium artifacts RUN --get NAME`` fetches one)."""
        return self._store.artifacts(self.experiment_id)


class ExperimentManager:
    """Seed-compatible manager over the data dir's store."""

    def __init__(self, base_dir: str | Path = "aquarium_data") -> None:
        self.base_dir = Path(base_dir)
        self.store = Store(self.base_dir)

    def _ingest_spool(self) -> None:
        """Offline runs appear once their spool files are ingested (a read-only store reads what it holds)."""
        if not self.store.read_only:
            self.store.ingest_spool(include_live=True)

    def create_experiment(self, experiment_name: str | None = None, **init_options: Any) -> ExperimentTracker:
        return ExperimentTracker(experiment_name, base_dir=self.base_dir, **init_options)

    def get_experiment(self, experiment_id: str) -> StoredExperiment | None:
        """The experiment with this id, or None (as in the seed)."""
        self._ingest_spool()
        try:
            return StoredExperiment(self.store, self.store.get_run(experiment_id))
        except RunNotFoundError:
            return None

    def list_experiments(self) -> list[dict[str, Any]]:
        """Newest first, with the seed's keys."""
        self._ingest_spool()
        experiments = []
        for run in self.store.list_runs():
            experiments.append(
                {
                    "experiment_name": run["name"],
                    "experiment_id": run["id"],
                    "status": run["status"],
                    "start_time": _iso(run["started_at"] or run["created_at"]),
                    "end_time": _iso(run["ended_at"]),
                    "experiment": run["experiment"],
                    "ranks": run["ranks"],
                    "summary": {"metrics": self.store.get_run(run["id"])["metrics"]},
                }
            )
        return experiments

    def delete_experiment(self, experiment_id: str) -> bool:
        return self.store.delete_run(experiment_id)

    def compare_experiments(self, experiment_ids: list[str], metric_names: list[str] | None = None) -> dict[str, Any]:
        """The seed's comparison plots: ``comparison_<metric>`` (one line per experiment) and, when
        several were found, ``hyperparameter_comparison`` (a table). Each is an
        ``aquarium.ui.compat.ComparisonPlot``: ``.show()``, ``.save(path)``, ``.model`` (Bokeh), and
        its data by id (``plot[id]`` -> name, steps, values; params for the table)."""
        from aquarium.ui.compat import metric_plot, params_plot  # the ui package draws; imported only here

        found = [e for e in (self.get_experiment(i) for i in experiment_ids) if e is not None]
        if not found:
            return {}
        names = metric_names or sorted({k for e in found for k in e._key_names()})
        result: dict[str, Any] = {}
        for name in names:
            per_run: dict[str, Any] = {}
            for experiment in found:
                steps, values = experiment._series(name)
                per_run[experiment.experiment_id] = {
                    "name": experiment.experiment_name,
                    "steps": steps,
                    "values": values,
                }
            result[f"comparison_{name}"] = metric_plot(name, per_run)
        if len(found) > 1:
            result["hyperparameter_comparison"] = params_plot(
                {e.experiment_id: e.hyperparameters for e in found}, {e.experiment_id: e.experiment_name for e in found}
            )
        return result

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "ExperimentManager":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
