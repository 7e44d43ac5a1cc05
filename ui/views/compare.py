"""Compare selected runs: summary cards, overlaid curves, the param diff, best values, params vs a
final metric (parallel coordinates with brushing, and a scatter), and the comparison saved as a
self-contained HTML file or a PNG.

The runs are read once through ``Api`` when the view is built (``Comparison``); the curves are read
per chosen metric, downsampled on the server to about a plot's pixel width. Run names and params are
data: every HTML pane escapes them, Tabulator titles are escaped, Bokeh draws them as text.
"""

from __future__ import annotations

import asyncio
import html
import importlib.util
import io
import logging
import threading
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.embed import file_html
from bokeh.models.widgets.markups import Div
from bokeh.resources import INLINE

from aquarium.collector.client import Api

from .. import palette, param_plots, plots
from ..png import render_png
from .comparison import (
    CARD_CSS,
    DEFAULT_OVERLAID,
    Comparison,
    card,
    differing,
    params_frame,
    performance_frame,
)

__all__ = ["DEFAULT_OVERLAID", "CompareView", "differing", "render_png"]

log = logging.getLogger("aquarium.ui.views.compare")


class CompareView(pn.viewable.Viewer):
    """Selected runs side by side (``CompareView(api, ["id1", "id2"])``)."""

    metrics: Any = param.ListSelector(default=[], doc="The metrics drawn as overlaid curves")
    maximised: Any = param.ListSelector(default=[], doc="Metrics whose best value is the max (the others: min)")
    differences_only: Any = param.Boolean(default=False, doc="Hide params equal in every run")
    target: Any = param.Selector(default=None, objects=[], doc="The final metric params are plotted against")
    scatter_param: Any = param.Selector(default=None, objects=[], doc="The param on the scatter's x axis")
    selected: Any = param.List(default=[], doc="Run ids brushed in the parallel-coordinates plot")

    def __init__(self, api: Api, run_ids: list[str], **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self.data = Comparison(api, list(run_ids))
        keys = self.data.keys
        self.param.metrics.objects = keys
        self.param.maximised.objects = keys
        self.param.target.objects = keys
        self.param.scatter_param.objects = self.data.numeric_params()
        with param.discard_events(self):  # the initial choices: nothing is drawn yet to update
            self.metrics = keys[:DEFAULT_OVERLAID]
            self.maximised = [k for k in keys if not plots.lower_is_better(k)]
            self.target = next((k for k in keys if not plots.lower_is_better(k)), keys[0] if keys else None)
            self.scatter_param = next(iter(self.data.numeric_params()), None)
        self._params_table = pn.widgets.Tabulator(
            self._params_value(),
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            theme="midnight",
            titles=self._titles(),
            layout="fit_data_fill",
            stylesheets=[_TABLE_CSS],
        )
        self._params_table.style.apply(self._param_colours, axis=0)  # type: ignore[union-attr]
        self._perf_table = pn.widgets.Tabulator(
            self._perf_value(),
            disabled=True,
            show_index=False,
            sizing_mode="stretch_width",
            theme="midnight",
            titles=self._titles(),
            layout="fit_data_fill",
            stylesheets=[_TABLE_CSS],
        )
        self._cards = pn.pane.HTML(self._cards_html(), sizing_mode="stretch_width", stylesheets=[CARD_CSS])
        self.status = pn.pane.HTML("", css_classes=["compare-status"])
        self._drawing = 0  # which drawing of the curves is on the page (a newer one drops an older's data)
        self._curves = pn.pane.Bokeh(self._curves_model(), sizing_mode="stretch_width")
        served = pn.state.curdoc is not None  # served: these two are drawn with the deferred section
        self._parallel = pn.pane.Bokeh(None if served else self._parallel_model(), sizing_mode="stretch_width")
        self._scatter = pn.pane.Bokeh(None if served else self._scatter_model(), sizing_mode="stretch_width")
        self.save_html = pn.widgets.FileDownload(
            callback=self._html_file,
            filename="comparison.html",
            label="Save comparison (HTML)",
            color="primary",
            embed=False,
        )
        self.save_png = pn.widgets.FileDownload(
            callback=self._png_file,
            filename="comparison.png",
            label="Save comparison (PNG)",
            color="primary",
            embed=False,
        )
        if importlib.util.find_spec("playwright") is None:  # the PNG is rendered by headless Chromium
            self.save_png.disabled = True
            self.save_png.description = "PNG export needs Playwright: pip install playwright"

    # -- pieces -------------------------------------------------------------------------------------------
    def _titles(self) -> dict[str, str]:
        return {f"run{i}": html.escape(r.label) for i, r in enumerate(self.data.runs)}

    def _params_value(self) -> pd.DataFrame:
        """The param table's rows: a ``param`` column, then one column per run."""
        frame = params_frame(self.data.runs)
        return (frame[differing(frame)] if self.differences_only else frame).reset_index()

    def _param_colours(self, column_: pd.Series) -> list[str]:
        """Tabulator cell styles: differing params and the brushed runs' columns highlighted."""
        frame = params_frame(self.data.runs)
        diff = differing(frame)
        shown = self._params_value()["param"]
        chosen = {f"run{i}" for i, r in enumerate(self.data.runs) if r.id in self.selected}
        lit = column_.name in chosen
        return [
            f"background-color: {palette.SELECTED if lit else palette.HIGHLIGHT}; color: #fff"
            if lit or (column_.name != "param" and bool(diff.get(shown.get(i), False)))
            else ""
            for i in column_.index
        ]

    def _perf_value(self) -> pd.DataFrame:
        return performance_frame(self.data.runs, self.data.keys, set(self.maximised))

    def _cards_html(self) -> str:
        maximised = set(self.maximised)
        cards = "".join(card(r, i, self.data.keys, maximised) for i, r in enumerate(self.data.runs))
        return f"<div style='display:flex;gap:12px;flex-wrap:wrap'>{cards}</div>"

    def _curves_model(self) -> Any:
        """The overlaid curves. In a served session whose series are not read yet, the figures
        come first with empty lines (legends and colours set), and the series are read on a
        thread meanwhile and handed to the session's document: the page loads while the store
        is read, instead of after."""
        keys = list(self.metrics)
        if not keys:
            return Div(text="<span class='muted'>Pick metrics to overlay.</span>")
        doc = pn.state.curdoc
        if doc is None or self.data.has_curves(keys):
            curves = self.data.read_curves(keys)
            return plots._grid([plots.overlay_curves(k, curves[k]) for k in keys], ncols=2)
        empty = np.empty(0)
        figures = [plots.overlay_curves(k, [(r.label, empty, empty) for r in self.data.runs_with(k)]) for k in keys]
        self._drawing += 1
        drawing = self._drawing
        threading.Thread(
            target=self._read_then_fill, args=(doc, drawing, keys, figures), name="aquarium-compare", daemon=True
        ).start()
        return plots._grid(figures, ncols=2)

    def _read_then_fill(self, doc: Any, drawing: int, keys: list[str], figures: list[Any]) -> None:
        try:
            curves = self.data.read_curves(keys)
        except Exception as e:  # a run deleted meanwhile, the API gone: say so, keep the page
            log.exception("reading the compared curves failed")
            doc.add_next_tick_callback(partial(self._say, f"could not read the curves: {e}"))
            return
        doc.add_next_tick_callback(partial(self._fill, drawing, keys, figures, curves))

    def _fill(self, drawing: int, keys: list[str], figures: list[Any], curves: dict[str, Any]) -> None:
        if drawing != self._drawing:  # the metrics changed meanwhile: those figures are gone
            return
        for key, fig in zip(keys, figures):
            lines: Any = fig.select_one({"name": "curves"})  # the overlay's MultiLine renderer
            lines.data_source.data = plots.curve_columns(curves[key])

    def _say(self, message: str) -> None:
        self.status.object = html.escape(message)

    def _parallel_model(self) -> Any:
        if self.target is None:
            return Div(text="No metrics to compare.")
        fig, _, marks = self.data.parallel(self.target)
        n_axes = len(set(marks.data["x"]))
        marks.selected.on_change("indices", lambda _a, _o, new: self._brushed(new, n_axes))
        return fig

    def _scatter_model(self) -> Any:
        if self.target is None or self.scatter_param is None:
            return Div(text="No params to plot.")
        return self.data.scatter(self.scatter_param, self.target)[0]

    def _brushed(self, indices: list[int], n_axes: int) -> None:
        runs = param_plots.brushed_runs(indices, len(self.data.runs), n_axes)
        self.selected = [self.data.runs[i].id for i in runs]

    # -- reactions ----------------------------------------------------------------------------------------
    @param.depends("metrics", watch=True)
    def _on_metrics(self) -> None:
        self._curves.object = self._curves_model()

    @param.depends("maximised", watch=True)
    def _on_maximised(self) -> None:
        self._perf_table.value = self._perf_value()
        self._cards.object = self._cards_html()

    @param.depends("differences_only", "selected", watch=True)
    def _on_params(self) -> None:
        self._params_table.value = self._params_value()

    @param.depends("target", watch=True)
    def _on_target(self) -> None:
        self.selected = []
        self._parallel.object = self._parallel_model()
        self._scatter.object = self._scatter_model()

    @param.depends("scatter_param", watch=True)
    def _on_scatter(self) -> None:
        self._scatter.object = self._scatter_model()

    # -- saving -------------------------------------------------------------------------------------------
    def comparison_html(self) -> str:
        """The comparison as one HTML file: BokehJS inlined, so it opens offline."""
        layout = self.data.document(list(self.metrics), set(self.maximised), self.target, self.differences_only)
        return file_html(layout, INLINE, "Aquarium comparison")

    def _html_file(self) -> io.BytesIO:
        return io.BytesIO(self.comparison_html().encode("utf-8"))

    async def _png_file(self) -> io.BytesIO | None:
        page = self.comparison_html()
        try:
            png = await asyncio.to_thread(render_png, page)
        except Exception as e:  # Chromium missing or crashed: say so in the page, keep the session alive
            self.status.object = f"<span style='color:{palette.DANGER}'>PNG export failed: {html.escape(str(e))}</span>"
            return None
        self.status.object = ""
        return io.BytesIO(png)

    def __panel__(self) -> Any:
        pn.extension("tabulator")  # the tables come after the page loaded: their JS must come with it
        section = {"styles": {"color": palette.TEXT}, "margin": (14, 10, 4, 10), "disable_math": True}
        metrics = pn.widgets.MultiChoice.from_param(self.param.metrics, label="Metrics", sizing_mode="stretch_width")
        return pn.Column(
            pn.Row(
                pn.pane.Markdown(f"## Comparing {len(self.data.runs)} runs", **section),
                pn.layout.HSpacer(),
                self.save_html,
                self.save_png,
                self.status,
                align="center",
            ),
            self._cards,
            pn.pane.Markdown("### Curves", **section),
            metrics,
            self._curves,
            # below the curves: drawn once the page has loaded, so that the curves come first
            pn.param.ParamFunction(lambda: self._below_curves(section), defer_load=True, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
            styles={"background": palette.BACKGROUND},
            name="compare-view",
        )

    def _below_curves(self, section: dict[str, Any]) -> pn.Column:
        if self._parallel.object is None:
            self._parallel.object = self._parallel_model()
        if self._scatter.object is None:
            self._scatter.object = self._scatter_model()
        diff = pn.widgets.Checkbox.from_param(self.param.differences_only, label="Differences only")
        goal = pn.widgets.MultiChoice.from_param(
            self.param.maximised, label="Best is the maximum for", sizing_mode="stretch_width"
        )
        target = pn.widgets.Select.from_param(self.param.target, label="Final metric", width=220)
        scatter_param = pn.widgets.Select.from_param(self.param.scatter_param, label="Scatter x", width=220)
        return pn.Column(
            pn.Row(
                pn.Column(
                    pn.pane.Markdown("### Hyperparameters", **section),
                    diff,
                    self._params_table,
                    sizing_mode="stretch_width",
                ),
                pn.Column(
                    pn.pane.Markdown("### Best values", **section), goal, self._perf_table, sizing_mode="stretch_width"
                ),
                sizing_mode="stretch_width",
            ),
            pn.pane.Markdown("### Params vs final metric", **section),
            pn.pane.Markdown(
                "Drag a box over an axis to select runs; shift-drag adds another axis.",
                styles={"color": palette.TEXT_MUTED},
                margin=(0, 10),
            ),
            pn.Row(target, scatter_param),
            pn.Row(self._parallel, self._scatter, sizing_mode="stretch_width"),
            sizing_mode="stretch_width",
        )


_TABLE_CSS = f"""
.tabulator {{background-color:{palette.BACKGROUND_DARK};border:1px solid {palette.GRID};font-size:13px}}
.tabulator .tabulator-header {{background-color:{palette.BACKGROUND_DARK};color:{palette.TEXT}}}
"""
