"""The seed's visualisations: ``MetricsVisualizerComponent(exp)`` and the plots of
``ExperimentManager.compare_experiments``, drawn by ``plots``.

Every result is a ``SeedPlot``: ``.model`` is the Bokeh model, ``.show()`` opens it in a browser (as
the seed's figures did) and ``.save(path)`` writes one self-contained HTML file (Bokeh's JS inlined:
it opens offline). Bokeh is imported when a plot is built.
"""

from __future__ import annotations

import html
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from aquarium.agent.errors import AquariumError
from aquarium.collector.compat import ExperimentManager as _DataManager


class _History(Protocol):
    """What the seed's experiment objects offer (``ExperimentTracker``, ``StoredExperiment``)."""

    def _key_names(self) -> list[str]: ...
    def _series(self, key: str) -> tuple[Sequence[int], Sequence[float]]: ...


def _bokeh() -> None:
    try:
        import bokeh  # noqa: F401
    except ImportError as e:
        raise AquariumError("plots need Bokeh: pip install 'aquarium-tracker[ui]'") from e


class SeedPlot:
    """A Bokeh model with the seed's ``show()`` and a ``save()`` to self-contained HTML."""

    def __init__(self, model: Any, title: str) -> None:
        self.model, self.title = model, title

    def show(self) -> None:
        """Open the plot in a browser (``bokeh.io.show``)."""
        from bokeh.io import show

        show(self.model)

    def html(self) -> str:
        """The plot as one HTML page with BokehJS inlined (no CDN)."""
        from bokeh.embed import file_html
        from bokeh.resources import INLINE

        return file_html(self.model, INLINE, self.title)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write ``html()`` to ``path``; returns the path."""
        target = Path(path)
        target.write_text(self.html(), encoding="utf-8")
        return target

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return {"text/html": self.html()}

    def __repr__(self) -> str:
        return f"SeedPlot({self.title!r}, {type(self.model).__name__})"


class ComparisonPlot(SeedPlot, Mapping[str, Any]):
    """One entry of ``compare_experiments``: the plot, and its data by experiment id (``plot[id]``),
    so code written against the data keeps working."""

    def __init__(self, title: str, data: dict[str, Any], build: Any) -> None:
        self._data, self._build, self._model = data, build, None
        self.title = title

    @property
    def model(self) -> Any:
        """The Bokeh model, built on first use (data-only callers never import Bokeh)."""
        if self._model is None:
            _bokeh()
            self._model = self._build()
        return self._model

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ComparisonPlot({self.title!r}, {list(self._data)})"


def metric_plot(metric: str, per_run: dict[str, dict[str, Any]]) -> ComparisonPlot:
    """``comparison_<metric>``: one line per experiment (``per_run``: id -> name, steps, values)."""

    def build() -> Any:
        from . import plots

        curves = [(d["name"] or i, np.asarray(d["steps"]), np.asarray(d["values"], float)) for i, d in per_run.items()]
        return plots.overlay_curves(metric, curves)

    return ComparisonPlot(f"Comparison of {metric}", per_run, build)


def params_plot(params: dict[str, dict[str, Any]], names: Mapping[str, str]) -> ComparisonPlot:
    """``hyperparameter_comparison``: a table, one row per param, one column per experiment."""

    def build() -> Any:
        from bokeh.models import ColumnDataSource
        from bokeh.models.widgets.tables import DataTable, TableColumn

        keys = sorted({k for p in params.values() for k in p})
        data: dict[str, Any] = {"param": keys}
        columns = [TableColumn(field="param", title="param")]
        for n, (run_id, p) in enumerate(params.items()):
            data[f"c{n}"] = ["" if k not in p else str(p[k]) for k in keys]
            # SlickGrid puts column titles into the page as HTML: a name is escaped (cells are text)
            columns.append(TableColumn(field=f"c{n}", title=html.escape(names.get(run_id) or run_id)))
        return DataTable(
            source=ColumnDataSource(data), columns=columns, index_position=None, sizing_mode="stretch_width"
        )

    return ComparisonPlot("Hyperparameters", params, build)


class ExperimentManager(_DataManager):
    """The seed's ``ExperimentManager``, whose ``compare_experiments`` returns plots: each a
    ``ComparisonPlot`` (``.show()``, ``.save(path)``, ``.model``) that still reads as the data by
    id. (``aquarium.collector.ExperimentManager`` returns the data alone: the collector draws nothing.)"""

    def compare_experiments(self, experiment_ids: list[str], metric_names: list[str] | None = None) -> dict[str, Any]:
        data = super().compare_experiments(experiment_ids, metric_names)
        plots: dict[str, Any] = {}
        names: dict[str, str] = {}
        for key, per_run in data.items():
            if key.startswith("comparison_"):
                plots[key] = metric_plot(key.removeprefix("comparison_"), per_run)
                names.update({run_id: d["name"] for run_id, d in per_run.items()})
        if "hyperparameter_comparison" in data:
            params = data["hyperparameter_comparison"]
            for run_id in params.keys() - names.keys():
                experiment = self.get_experiment(run_id)
                names[run_id] = experiment.experiment_name if experiment is not None else run_id
            plots["hyperparameter_comparison"] = params_plot(params, names)
        return plots


class MetricsVisualizerComponent:
    """The seed's visualiser of one experiment's metrics (its steps and values as logged).

    ``create_metrics_heatmap`` is the seed's time-series heatmap: the run's steps in ``bins`` ranges
    (rows) × its metrics, each cell the range's mean, coloured per metric from its min to its max.
    """

    def __init__(self, experiment: _History) -> None:
        _bokeh()
        self.experiment = experiment

    def _curves(self, names: Sequence[str] | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        out = {}
        for name in names or self.experiment._key_names():
            steps, values = self.experiment._series(name)
            out[name] = (np.asarray(steps, dtype=np.int64), np.asarray(values, dtype=np.float64))
        return out

    def create_training_curves(self, metric_names: Sequence[str] | None = None) -> SeedPlot:
        from . import plots

        return SeedPlot(plots.training_curves(self._curves(metric_names)), "Training curves")

    def create_smoothed_curves(self, window_size: int = 10, metric_names: Sequence[str] | None = None) -> SeedPlot:
        from . import plots

        grid = plots.smoothed_curves(self._curves(metric_names), method="moving", amount=window_size)
        return SeedPlot(grid, "Smoothed curves")

    def create_distribution_plot(self, metric_name: str, bins: int = 30) -> SeedPlot:
        from . import plots

        _, values = self._curves([metric_name])[metric_name]
        return SeedPlot(plots.distribution(values, metric_name, bins=bins), f"Distribution of {metric_name}")

    def create_correlation_matrix(self) -> SeedPlot:
        import pandas as pd

        from . import matrix_plots

        curves = self._curves()
        frame = pd.DataFrame({k: pd.Series(v, index=s) for k, (s, v) in curves.items()})
        frame = frame.groupby(level=0).last() if len(frame) else frame
        matrix = matrix_plots.correlation(frame) if len(curves) else np.zeros((0, 0))
        return SeedPlot(matrix_plots.correlation_matrix(list(curves), matrix), "Correlation matrix")

    def create_metrics_heatmap(self, bins: int = 10) -> SeedPlot:
        from . import matrix_plots

        curves = self._curves()
        rows, matrix = step_bins(curves, bins)
        fig = matrix_plots.metrics_heatmap(rows, list(curves), matrix, title="Metrics over training")
        return SeedPlot(fig, "Metrics heatmap")


def step_bins(curves: Mapping[str, tuple[np.ndarray, np.ndarray]], bins: int) -> tuple[list[str], np.ndarray]:
    """The step span cut into ``bins`` equal ranges; each metric's mean of finite values per range."""
    all_steps = [s for s, _ in curves.values() if len(s)]
    if not all_steps:
        return [], np.zeros((0, len(curves)))
    lo = int(min(int(s.min()) for s in all_steps))
    hi = int(max(int(s.max()) for s in all_steps))
    edges = np.linspace(lo, hi + 1, min(bins, hi - lo + 1) + 1)
    matrix = np.full((len(edges) - 1, len(curves)), np.nan)
    for j, (steps, values) in enumerate(curves.values()):
        where = np.clip(np.searchsorted(edges, steps, side="right") - 1, 0, len(edges) - 2)
        for i in range(len(edges) - 1):
            chosen = values[(where == i) & np.isfinite(values)]
            if len(chosen):
                matrix[i, j] = chosen.mean()
    rows = [f"steps {int(np.ceil(a))}–{int(np.ceil(b)) - 1}" for a, b in zip(edges[:-1], edges[1:])]
    return rows, matrix
