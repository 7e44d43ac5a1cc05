"""The runs being compared, read once through ``Api`` (``Comparison``), and what is derived from
them without a session: the param diff, best values, summary cards, the curves (read per chosen
metric, downsampled on the server to about a plot's pixel width) and the standalone document the
comparison is saved as. ``compare.CompareView`` lays them out in the dashboard.

Run names and params are data: every HTML piece here escapes them, Bokeh draws them as text.
"""

from __future__ import annotations

import html
import json
import logging
import math
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from bokeh.layouts import column, row
from bokeh.models.widgets.markups import Div

from aquarium.collector.client import Api

from .. import palette, param_plots, plots

log = logging.getLogger("aquarium.ui.views.comparison")

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
