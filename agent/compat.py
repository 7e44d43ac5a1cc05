"""The seed's tracking API (``ExperimentTracker``), kept working on top of a Run.

In the seed an "experiment" is one tracked run: ``experiment_id`` is the run id and
``experiment_name`` the name the tracker was given. The history ``get_metrics`` and
``get_best_metric`` need is kept in compact arrays (about 32 bytes a step), not in dicts.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from . import env
from .batcher import PointQueue
from .run import Run, init
from .statuses import COMPLETED, TERMINAL_STATUSES
from .values import coerce_metrics, coerce_step
from .wire import ArtifactRecord


class MetricHistoryReads:
    """The seed's read methods over any history exposing ``_key_names`` and ``_series(key)``."""

    def _key_names(self) -> list[str]:
        raise NotImplementedError

    def _series(self, key: str) -> tuple[Sequence[int], Sequence[float]]:
        raise NotImplementedError

    def _entries(self) -> list[dict[str, Any]]:
        raise NotImplementedError

    def get_metrics(self, metric_name: str | None = None) -> list[Any]:
        """With a name: that metric's values in logging order. Without: one dict per log call
        (``timestamp``, ``step`` and the metrics), as the seed returned."""
        if metric_name is None:
            return self._entries()
        return list(self._series(metric_name)[1])

    def get_best_metric(self, metric_name: str, mode: str = "max") -> tuple[float | None, int | None]:
        """``(value, step)`` of the best value (``mode`` "max", anything else means min);
        ``(None, None)`` when the metric was never logged. NaN values never win; ties keep the first."""
        steps, values = self._series(metric_name)
        best_index = None
        for i, value in enumerate(values):
            if math.isnan(value):
                continue
            if best_index is None or (value > values[best_index] if mode == "max" else value < values[best_index]):
                best_index = i
        if best_index is None:
            return None, None
        return float(round(values[best_index], 10)), int(steps[best_index])

    def plot_metrics(self, metric_names: list[str] | None = None, figsize: tuple[int, int] = (10, 6)) -> Any:
        """A matplotlib Figure of the metrics against step (matplotlib is imported only here)."""
        try:
            import matplotlib.pyplot as plt
        except ImportError as e:
            raise ImportError("plot_metrics needs matplotlib: pip install matplotlib") from e
        fig, ax = plt.subplots(figsize=figsize)
        names = metric_names or self._key_names()
        if not names:
            ax.text(0.5, 0.5, "No metrics data available", ha="center", va="center")
            return fig
        for name in names:
            steps, values = self._series(name)
            if len(steps):
                ax.plot(list(steps), list(values), marker="o", markersize=2, label=name)
        ax.set_xlabel("step")
        ax.set_title("Metrics History")
        ax.legend()
        return fig


class ExperimentTracker(MetricHistoryReads):
    """Seed-compatible tracker: ``ExperimentTracker(experiment_name, base_dir=None, **init_options)``.

    ``base_dir`` is the data dir used when the run goes offline (and where summaries are
    written); ``init_options`` go to :func:`aquarium.agent.init` (``redis_url``, ``run_id``,
    ``rank``, ``mode``, ...). Artifacts are uploaded in the background like the Run's, and listed
    in the summary's ``artifacts``.
    """

    def __init__(
        self,
        experiment_name: str | None = None,
        base_dir: str | Path | None = None,
        auto_visualize: bool = False,
        **init_options: Any,
    ) -> None:
        self.experiment_name = experiment_name or f"experiment_{datetime.now():%Y%m%d_%H%M%S}"
        self.base_dir = Path(base_dir) if base_dir is not None else Path(env.DATA_DIR.get())
        self.auto_visualize = auto_visualize
        init_options.setdefault("experiment", self.experiment_name)
        init_options.setdefault("name", self.experiment_name)
        self.run: Run = init(data_dir=str(self.base_dir), **init_options)
        self.experiment_id = self.run.id
        self.experiment_dir = self.base_dir / "experiments" / f"{self.experiment_name}_{self.experiment_id}"
        self.hyperparameters: dict[str, Any] = {}
        self.metadata: dict[str, Any] = {"start_time": datetime.now().isoformat(), "status": "running"}
        self._history = PointQueue()  # one entry per log_metrics call, never drained
        self.artifacts: list[dict[str, Any]] = []  # what the summary lists, in logging order

    # -- writes --------------------------------------------------------------------------------
    def log_hyperparameters(self, hyperparameters: Mapping[str, Any]) -> None:
        self.run.log_params(hyperparameters)
        self.hyperparameters.update(hyperparameters)

    def log_metrics(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Log metrics; ``step`` defaults to the number of earlier calls, as in the seed."""
        step = len(self._history) if step is None else coerce_step(step)
        values = coerce_metrics(metrics)
        self.run.log(values, step=step)
        self._history.append_entries([(step, time.time(), tuple(values), tuple(values.values()))])

    def log_artifact(self, path: str | Path, name: str | None = None) -> ArtifactRecord:
        """Log a file under ``name`` (default: its basename)."""
        return self._listed(self.run.log_artifact(path, name), path)

    def log_model(self, path: str | Path, framework: str | None = None) -> ArtifactRecord:
        """Log a model file, with the framework it belongs to ("tensorflow", "pytorch", ...)."""
        return self._listed(self.run.log_model(path, framework), path)

    def log_figure(self, fig: Any, name: str) -> ArtifactRecord:
        """Log a matplotlib Figure (or a PIL Image) as ``name`` (its extension picks the format)."""
        return self._listed(self.run.log_figure(fig, name), None)

    def _listed(self, record: ArtifactRecord, path: str | Path | None) -> ArtifactRecord:
        self.artifacts.append(
            {
                "name": record.name,
                "type": record.kind,
                "path": None if path is None else str(path),
                "size": record.size,
                "framework": record.framework,
                "media_type": record.media_type,
                "upload": record.upload,
                "timestamp": datetime.fromtimestamp(record.time).isoformat(),
            }
        )
        return record

    def set_status(self, status: str) -> None:
        self.run.set_status(status)
        self.metadata["status"] = status
        if status in TERMINAL_STATUSES:
            self.metadata["end_time"] = datetime.now().isoformat()

    def save_experiment_summary(self) -> str:
        """Write ``summary.json`` (the seed's keys) under ``experiment_dir``; returns its path."""
        latest = self._entries()[-1] if len(self._history) else {}
        best = {}
        for name in self._key_names():
            value, step = self.get_best_metric(name, mode="max")
            if value is not None:
                best[name] = {"value": value, "step": step, "mode": "max"}
        summary = {
            "experiment_name": self.experiment_name,
            "experiment_id": self.experiment_id,
            "metadata": self.metadata,
            "hyperparameters": self.hyperparameters,
            "metrics": {"latest": {k: v for k, v in latest.items() if k not in ("timestamp", "step")}, "best": best},
            "artifacts": list(self.artifacts),
        }
        self.experiment_dir.mkdir(parents=True, exist_ok=True)
        path = self.experiment_dir / "summary.json"
        path.write_text(json.dumps(summary, indent=2, default=str, allow_nan=True))
        return str(path)

    def finish(self) -> None:
        """The seed's finish: status completed, summary written, then the run is finished."""
        if self.metadata["status"] not in TERMINAL_STATUSES:
            self.set_status(COMPLETED)
        self.save_experiment_summary()
        self.run.finish()

    # -- history (MetricHistoryReads) ------------------------------------------------------------
    def _key_names(self) -> list[str]:
        return list(dict.fromkeys(k for keys in self._history.key_sets for k in keys))

    def _series(self, key: str) -> tuple[list[int], list[float]]:
        steps: list[int] = []
        values: list[float] = []
        for entry in self._entries():
            if key in entry:
                steps.append(entry["step"])
                values.append(entry[key])
        return steps, values

    def _entries(self) -> list[dict[str, Any]]:
        h = self._history
        entries, offset = [], 0
        for call, key_set in enumerate(h.key_set_ids):
            keys = h.key_sets[key_set]
            entry: dict[str, Any] = {"timestamp": h.times[call], "step": h.steps[call]}
            entry.update(zip(keys, h.values[offset : offset + len(keys)]))
            entries.append(entry)
            offset += len(keys)
        return entries
