"""The seed's visualisations for the selected runs: training curves, smoothed curves (moving average
window or debiased EMA), the distribution of a metric, the correlation matrix of a run's metrics, and
the heatmap of final metrics across the runs.

Curves are read through ``Api`` downsampled to about a chart's pixel width (``SAMPLES``); the
distribution and the correlation read a run's points in full up to ``FULL_READ`` points per metric,
and beyond that a downsampled window (which keeps the extremes: MinMaxLTTB); the correlation of
downsampled metrics is then computed on each metric interpolated onto the union of their steps.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param

from aquarium.collector.client import Api

from .. import matrix_plots, palette, plots

SAMPLES = 1200
FULL_READ = 200_000


class VisualizeView(pn.viewable.Viewer):
    """``VisualizeView(api, run_ids)``: one run's charts (``run`` picks it) and the runs' heatmap."""

    run: Any = param.Selector(
        default=None, objects=[], doc="The run whose curves, distribution and correlations are drawn"
    )
    method: Any = param.Selector(default="moving", objects=["moving", "ema"], doc="Smoothing: moving average or EMA")
    window: Any = param.Integer(default=10, bounds=(1, 500), doc="Moving-average window, in points")
    weight: Any = param.Number(default=0.6, bounds=(0.0, 0.99), step=0.01, doc="EMA weight (TensorBoard's slider)")
    metric: Any = param.Selector(default=None, objects=[], doc="The metric whose distribution is drawn")

    def __init__(self, api: Api, run_ids: list[str], **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self.api = api
        self.runs = {i: api.run(i) for i in run_ids}
        labels: dict[str, str] = {}
        for run_id, run in self.runs.items():  # a name two runs share gets the id too
            label = run.get("name") or run_id
            labels[f"{label} ({run_id})" if label in labels else label] = run_id
        self.param.run.objects = labels
        self._curves_cache: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {}
        with param.discard_events(self):
            self.run = next(iter(self.runs), None)
            self._set_metrics()
        self._training = pn.pane.Bokeh(self._training_model(), sizing_mode="stretch_width")
        self._smoothed = pn.pane.Bokeh(self._smoothed_model(), sizing_mode="stretch_width")
        self._distribution = pn.pane.Bokeh(self._distribution_model(), sizing_mode="stretch_width")
        self._correlation = pn.pane.Bokeh(self._correlation_model(), sizing_mode="stretch_width")
        self._heatmap = pn.pane.Bokeh(self._heatmap_model(), sizing_mode="stretch_width")

    # -- data ---------------------------------------------------------------------------------------------
    def _keys(self) -> list[str]:
        return [] if self.run is None else sorted(self.runs[self.run].get("metrics") or {})

    def _set_metrics(self) -> None:
        keys = self._keys()
        self.param.metric.objects = keys
        preferred = [k for k in keys if "acc" in k.lower()]
        self.metric = next(iter(preferred or keys), None)

    def curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """The run's metrics (mean across ranks), downsampled; read once per run."""
        if self.run is None:
            return {}
        if self.run not in self._curves_cache:
            windows = {k: self.api.series(self.run, k, agg="mean", samples=SAMPLES) for k in self._keys()}
            self._curves_cache[self.run] = {k: (w.steps, w.values) for k, w in windows.items()}
        return self._curves_cache[self.run]

    def _samples(self, key: str) -> int | None:
        count = (self.runs[str(self.run)].get("metrics") or {}).get(key, {}).get("count") or 0
        return None if count <= FULL_READ else FULL_READ

    def history(self) -> pd.DataFrame:
        """The run's metrics by step (mean across ranks), for correlations: steps where all are logged."""
        keys = self._keys()
        if self.run is None or not keys:
            return pd.DataFrame()
        samples = max((self._samples(k) or 0) for k in keys) or None
        frame = self.api.history(self.run, keys, agg="mean", samples=samples)
        if samples is None:
            return frame
        # downsampled windows keep different steps per metric: interpolate each onto the others' steps
        # (inside its own range only), so the correlation has shared steps to work on
        return frame.interpolate(method="index", limit_area="inside")

    # -- models -------------------------------------------------------------------------------------------
    def _training_model(self) -> Any:
        return plots.training_curves(self.curves())

    def _smoothed_model(self) -> Any:
        amount = self.window if self.method == "moving" else self.weight
        return plots.smoothed_curves(self.curves(), method=str(self.method), amount=amount)

    def _distribution_model(self) -> Any:
        if self.run is None or self.metric is None:
            return plots.distribution(np.array([]), "–")
        w = self.api.series(self.run, self.metric, agg="mean", samples=self._samples(self.metric))
        return plots.distribution(w.values, self.metric)

    def _correlation_model(self) -> Any:
        frame = self.history()
        names = [str(c) for c in frame.columns]
        matrix = matrix_plots.correlation(frame) if names else np.zeros((0, 0))
        return matrix_plots.correlation_matrix(names, matrix)

    def _heatmap_model(self) -> Any:
        keys = sorted({k for r in self.runs.values() for k in (r.get("metrics") or {})})
        labels = [r.get("name") or i for i, r in self.runs.items()]
        matrix = np.array([[_last(r, k) for k in keys] for r in self.runs.values()], dtype=np.float64).reshape(
            len(labels), len(keys)
        )
        return matrix_plots.metrics_heatmap(labels, keys, matrix, title="Final metrics across runs")

    # -- reactions ----------------------------------------------------------------------------------------
    @param.depends("run", watch=True)
    def _on_run(self) -> None:
        self._set_metrics()
        with pn.io.hold():
            self._training.object = self._training_model()
            self._smoothed.object = self._smoothed_model()
            self._distribution.object = self._distribution_model()
            self._correlation.object = self._correlation_model()

    @param.depends("method", "window", "weight", watch=True)
    def _on_smoothing(self) -> None:
        self._smoothed.object = self._smoothed_model()

    @param.depends("metric", watch=True)
    def _on_metric(self) -> None:
        self._distribution.object = self._distribution_model()

    def __panel__(self) -> Any:
        heading = {"styles": {"color": palette.TEXT}, "margin": (14, 10, 4, 10)}
        run_name = (self.runs.get(str(self.run)) or {}).get("name") or str(self.run)
        method = pn.widgets.RadioButtonGroup.from_param(
            self.param.method, options={"Moving average": "moving", "EMA (debiased)": "ema"}, color="primary"
        )
        window = pn.widgets.IntSlider.from_param(self.param.window, label="Window (points)", width=240)
        weight = pn.widgets.FloatSlider.from_param(self.param.weight, label="EMA weight", width=240)
        window.visible, weight.visible = self.method == "moving", self.method == "ema"

        def toggle(event: Any) -> None:
            window.visible, weight.visible = event.new == "moving", event.new == "ema"

        self.param.watch(toggle, "method")
        return pn.Column(
            pn.Row(
                pn.pane.Markdown("## Visualize", **heading),
                pn.layout.HSpacer(),
                pn.widgets.Select.from_param(self.param.run, label="Run", width=280),
                sizing_mode="stretch_width",
            ),
            pn.pane.HTML(
                f"<span style='color:{palette.TEXT_MUTED}'>{len(self.runs)} run(s) selected; "
                f"charts of {html.escape(run_name)}</span>",
                margin=(0, 10),
            ),
            pn.pane.Markdown("### Training curves", **heading),
            self._training,
            pn.pane.Markdown("### Smoothed curves", **heading),
            pn.Row(method, window, weight),
            self._smoothed,
            pn.Row(
                pn.Column(
                    pn.pane.Markdown("### Distribution", **heading),
                    pn.widgets.Select.from_param(self.param.metric, label="Metric", width=240),
                    self._distribution,
                    sizing_mode="stretch_width",
                ),
                pn.Column(
                    pn.pane.Markdown("### Correlation matrix", **heading),
                    self._correlation,
                    sizing_mode="stretch_width",
                ),
                sizing_mode="stretch_width",
            ),
            pn.pane.Markdown("### Metrics heatmap", **heading),
            self._heatmap,
            sizing_mode="stretch_width",
            styles={"background": palette.BACKGROUND},
            name="visualize-view",
        )


def _last(run: dict[str, Any], key: str) -> float:
    value = ((run.get("metrics") or {}).get(key) or {}).get("last")
    return np.nan if value is None else float(value)
