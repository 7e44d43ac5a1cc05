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
import json
import logging
import math
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import panel as pn
import param
from bokeh.embed import file_html
from bokeh.layouts import column, row
from bokeh.models.widgets.markups import Div
from bokeh.resources import INLINE

from aquarium.collector.client import Api

from .. import palette, param_plots, plots

log = logging.getLogger("aquarium.ui.views.compare")

SAMPLES = 1200  # points per curve: about the pixel width of a full-width chart
DEFAULT_OVERLAID = 4  # metrics overlaid when the view opens (the user picks more)
_READERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="aquarium-compare-read")
"""Shared by every session: at most four series read at once, four store connections kept."""


@dataclass(frozen=True)
class RunSummary:
    """What the comparison shows of one run."""

    id: str
    name: str
    status: str
    duration: float | None
    params: dict[str, Any]
    metrics: dict[str, dict[str, Any]]
    ranks: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return self.name or self.id


def _flat(params: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested params as dotted names; lists stay one value (their JSON text)."""
    out: dict[str, Any] = {}
    for key, value in params.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = json.dumps(value) if isinstance(value, list) else value
    return out


def load_run(api: Api, run_id: str) -> RunSummary:
    run = api.run(run_id)
    started = run.get("started_at") or run.get("created_at")
    ended = run.get("ended_at") or (time.time() if run.get("status") == "running" else None)
    duration = ended - started if started and ended and ended >= started else None
    return RunSummary(
        run_id,
        run.get("name") or "",
        run.get("status") or "",
        duration,
        _flat(run.get("params") or {}),
        run.get("metrics") or {},
        tuple(int(r) for r in run.get("ranks") or ()),
    )


def params_frame(runs: list[RunSummary]) -> pd.DataFrame:
    """One row per param, one column per run (``run0``, ``run1``, ...), "" where a run lacks it."""
    names = sorted({k for r in runs for k in r.params})
    return pd.DataFrame(
        {f"run{i}": ["" if k not in r.params else _cell(r.params[k]) for k in names] for i, r in enumerate(runs)},
        index=pd.Index(names, name="param"),
    )


def differing(frame: pd.DataFrame) -> pd.Series:
    """Whether each param's value differs between the runs (missing counts as a value)."""
    return frame.astype(str).nunique(axis=1) > 1


def best(summary: dict[str, Any], maximise: bool) -> tuple[float | None, int | None]:
    """The best value of a metric and the step it was reached (across ranks), from its summary."""
    part = "max" if maximise else "min"
    value = summary.get(part)
    return (None, None) if value is None else (float(value), summary.get(f"{part}_step"))


def performance_frame(runs: list[RunSummary], keys: list[str], maximised: set[str]) -> pd.DataFrame:
    rows = []
    for key in keys:
        row_: dict[str, Any] = {"metric": key, "goal": "max" if key in maximised else "min"}
        for i, r in enumerate(runs):
            value, step = best(r.metrics.get(key, {}), key in maximised)
            row_[f"run{i}"] = "–" if value is None else f"{value:.5g} @ step {step}"
        rows.append(row_)
    return pd.DataFrame(rows, columns=["metric", "goal", *(f"run{i}" for i in range(len(runs)))])


def _cell(value: Any) -> Any:
    return (
        ""
        if value is None
        else value
        if isinstance(value, int | float | str) and not isinstance(value, bool)
        else str(value)
    )


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    minutes, s = divmod(int(seconds), 60)
    h, m = divmod(minutes, 60)
    return f"{h}h {m:02d}m" if h else f"{m}m {s:02d}s" if m else f"{s}s"


def card(run: RunSummary, index: int, keys: list[str], maximised: set[str]) -> str:
    """A run's summary card as HTML; every name and value escaped."""
    colour = palette.status_colour(run.status)
    lines = []
    for key in keys[:4]:
        value, step = best(run.metrics.get(key, {}), key in maximised)
        shown = "–" if value is None else f"{value:.4g} <span class='muted'>@ {step}</span>"
        lines.append(f"<div class='metric'><span>{html.escape(key)}</span><b>{shown}</b></div>")
    return (
        f"<div class='run-card' style='border-top:3px solid {palette.series_colour(index)}'>"
        f"<div class='name' title='{html.escape(run.id, quote=True)}'>{html.escape(run.label)}</div>"
        f"<span class='badge' style='background:{colour}'>{html.escape(run.status or 'unknown')}</span>"
        f"<span class='muted'> {_duration(run.duration)}</span>{''.join(lines)}</div>"
    )


CARD_CSS = f"""
.run-card {{background:{palette.BACKGROUND_DARK};color:{palette.TEXT};border-radius:6px;padding:10px 14px;
  min-width:190px;font-family:sans-serif;font-size:13px}}
.run-card .name {{font-weight:600;font-size:15px;margin-bottom:4px;overflow:hidden;text-overflow:ellipsis;
  white-space:nowrap;max-width:260px}}
.run-card .badge {{border-radius:10px;padding:1px 8px;font-size:11px;color:#fff}}
.run-card .muted, .muted {{color:{palette.TEXT_MUTED}}}
.run-card .metric {{display:flex;justify-content:space-between;gap:12px;margin-top:4px}}
"""


class Comparison:
    """The runs being compared, read once, and the Bokeh models built from them."""

    def __init__(self, api: Api, run_ids: list[str]) -> None:
        self.api = api
        self.runs = [load_run(api, i) for i in run_ids]
        self.keys = sorted({k for r in self.runs for k in r.metrics})
        self._curves: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        self._lock = threading.Lock()  # the cache is filled from a reading thread

    def runs_with(self, key: str) -> list[RunSummary]:
        return [r for r in self.runs if key in r.metrics]

    def has_curves(self, keys: list[str]) -> bool:
        with self._lock:
            return all(k in self._curves for k in keys)

    def curves(self, key: str) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return self.read_curves([key])[key]

    def read_curves(self, keys: list[str]) -> dict[str, list[tuple[str, np.ndarray, np.ndarray]]]:
        """The curves of every run for ``keys``, each read once (kept for the next redraw). From
        a data dir the series are read in parallel (a connection per reading thread; SQLite
        and the downsampling release the GIL); an HTTP Api has one connection, so in turn."""
        with self._lock:
            wanted = [(k, r) for k in keys if k not in self._curves for r in self.runs_with(k)]

        def read(pair: tuple[str, RunSummary]) -> Any:
            key, run = pair
            if len(run.ranks) == 1:  # its one rank as it is: the same line, without aligning ranks (half the time)
                return self.api.series(run.id, key, rank=run.ranks[0], samples=SAMPLES, times=False)
            return self.api.series(run.id, key, agg="mean", samples=SAMPLES)

        remote = self.api.target.startswith(("http://", "https://"))
        windows = list(map(read, wanted)) if remote or len(wanted) < 2 else list(_READERS.map(read, wanted))
        fresh: dict[str, list[tuple[str, np.ndarray, np.ndarray]]] = {}
        for (key, run), w in zip(wanted, windows):
            fresh.setdefault(key, []).append((run.label, w.steps, w.values))
        with self._lock:
            for key in keys:
                self._curves.setdefault(key, fresh.get(key, []))
            return {k: self._curves[k] for k in keys}

    def final(self, key: str) -> list[float]:
        last = [r.metrics.get(key, {}).get("last") for r in self.runs]
        return [math.nan if v is None else float(v) for v in last]

    def numeric_params(self) -> list[str]:
        """Params worth an axis: set in at least one run, with more than one distinct value if possible."""
        frame = params_frame(self.runs)
        varying = [str(p) for p in frame.index[differing(frame)]] if len(self.runs) > 1 else []
        return varying or [str(p) for p in frame.index]

    def parallel(self, metric: str) -> tuple[Any, Any, Any]:
        names = self.numeric_params()[:8]
        columns: dict[str, list[Any]] = {n: [r.params.get(n) for r in self.runs] for n in names}
        columns[metric] = self.final(metric)
        return param_plots.parallel_coordinates([r.label for r in self.runs], columns, metric)

    def scatter(self, param_name: str, metric: str) -> tuple[Any, Any]:
        x = [r.params.get(param_name) for r in self.runs]
        return param_plots.param_scatter([r.label for r in self.runs], x, self.final(metric), param_name, metric)

    def document(
        self, metrics: list[str], maximised: set[str], target: str | None, differences_only: bool = False
    ) -> Any:
        """The whole comparison as one standalone Bokeh layout (fresh models, for the saved file)."""
        style = f"<style>{CARD_CSS}</style>"
        cards = Div(
            text=style
            + "<div style='display:flex;gap:12px;flex-wrap:wrap'>"
            + "".join(card(r, i, self.keys, maximised) for i, r in enumerate(self.runs))
            + "</div>",
            sizing_mode="stretch_width",
        )
        curves = self.read_curves(list(metrics))
        figures = [plots.overlay_curves(k, curves[k]) for k in metrics]
        parts: list[Any] = [
            cards,
            *figures,
            Div(
                text=_table_html("Hyperparameters", _params(self.runs, differences_only), self.runs),
                sizing_mode="stretch_width",
            ),
            Div(
                text=_table_html(
                    "Best values", performance_frame(self.runs, self.keys, maximised).set_index("metric"), self.runs
                ),
                sizing_mode="stretch_width",
            ),
        ]
        if target:
            parts.append(row(self.parallel(target)[0], sizing_mode="stretch_width"))
        layout = column(
            *parts, sizing_mode="stretch_width", styles={"background": palette.BACKGROUND, "padding": "16px"}
        )
        return layout


def _params(runs: list[RunSummary], differences_only: bool) -> pd.DataFrame:
    frame = params_frame(runs)
    return frame[differing(frame)] if differences_only else frame


def _table_html(title: str, frame: pd.DataFrame, runs: list[RunSummary]) -> str:
    """A small static table for the saved file, escaped."""
    head = "".join(
        f"<th>{html.escape(runs[int(c[3:])].label) if c.startswith('run') else html.escape(str(c))}</th>"
        for c in frame.columns
    )
    body = "".join(
        f"<tr><td>{html.escape(str(i))}</td>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in r) + "</tr>"
        for i, r in zip(frame.index, frame.to_numpy())
    )
    cell = f"padding:4px 10px;border-bottom:1px solid {palette.GRID};text-align:left"
    return (
        (
            f"<h3 style='color:{palette.TEXT};font-family:sans-serif'>{html.escape(title)}</h3>"
            f"<table style='border-collapse:collapse;color:{palette.TEXT};font-family:sans-serif;font-size:13px'>"
            f"<thead><tr><th>{html.escape(str(frame.index.name or ''))}</th>{head}</tr></thead><tbody>{body}</tbody>"
            "</table>"
        )
        .replace("<th>", f"<th style='{cell}'>")
        .replace("<td>", f"<td style='{cell}'>")
    )


def chromium_path() -> str | None:
    """The Chromium that renders PNGs: ``AQUARIUM_CHROMIUM``, else one on the PATH."""
    return os.environ.get("AQUARIUM_CHROMIUM") or next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None
    )


def render_png(page_html: str, width: int = 1400) -> bytes:
    """A full-page screenshot of a standalone HTML page, taken by headless Chromium (Playwright).

    The page is loaded from a temporary file (its JS is inline: nothing is fetched) and shot once
    Bokeh has rendered every plot's canvas.
    """
    from playwright.sync_api import sync_playwright

    executable = chromium_path()
    with tempfile.TemporaryDirectory() as tmp, sync_playwright() as p:
        path = Path(tmp) / "comparison.html"
        path.write_text(page_html, encoding="utf-8")
        browser = p.chromium.launch(
            executable_path=executable,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            page = browser.new_page(viewport={"width": width, "height": 900})
            page.goto(path.as_uri())
            page.wait_for_function(
                "() => window.Bokeh && Bokeh.documents.length > 0 && "
                "document.querySelectorAll('.bk-Column, .bk-Figure, div').length > 0"
            )
            page.wait_for_function("() => Bokeh.index && Object.keys(Bokeh.index).length > 0")
            # two animation frames: the canvases have painted after the last layout pass
            page.evaluate("() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
            return page.screenshot(full_page=True)
        finally:
            browser.close()


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
