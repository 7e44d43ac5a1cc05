"""Params against a final metric: parallel coordinates (brushing an axis selects runs) and a
scatter; pure functions from values to Bokeh models, styled as ``plots`` styles every figure."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from bokeh.models import BoxSelectTool, ColumnDataSource, CustomJS, FactorRange, FixedTicker, HoverTool, Range1d
from bokeh.models.annotations import Label

from . import palette
from .matrix_plots import normalise_columns
from .plots import lower_is_better, new_figure


def axis_positions(column: Sequence[Any]) -> tuple[np.ndarray, list[tuple[float, str]]]:
    """A column on a 0..1 axis: numbers by min..max (a constant column at 0.5), anything else as evenly
    spaced sorted categories; returns the positions and the (position, label) ticks to draw."""
    values = list(column)
    numbers = [v for v in values if isinstance(v, int | float | np.number) and not isinstance(v, bool)]
    if len(numbers) == len(values) and values:
        x = np.asarray(values, dtype=np.float64)
        finite = x[np.isfinite(x)]
        if not len(finite):
            return np.full(len(x), np.nan), []
        lo, hi = float(finite.min()), float(finite.max())
        if hi == lo:
            return np.where(np.isfinite(x), 0.5, np.nan), [(0.5, f"{lo:.4g}")]
        ticks = [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")]
        if lo > 0 and hi / lo >= 100:  # learning rates and the like span decades: a log axis
            with np.errstate(invalid="ignore", divide="ignore"):
                return (np.log10(x) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)), ticks
        return (x - lo) / (hi - lo), ticks
    labels = sorted({"" if v is None else str(v) for v in values})
    place = {label: (0.5 if len(labels) == 1 else k / (len(labels) - 1)) for k, label in enumerate(labels)}
    return np.array([place["" if v is None else str(v)] for v in values]), [(p, t) for t, p in place.items()]


BRUSH_JS = """
const n_runs = lines.data.ys.length, n_axes = axes;
const chosen = new Set(points.selected.indices);
const brushed = new Set();
for (const i of chosen) brushed.add(i % n_axes);
const keep = [];
for (let run = 0; run < n_runs; run++) {
  let ok = brushed.size > 0;
  for (const a of brushed) if (!chosen.has(run * n_axes + a)) { ok = false; break; }
  if (ok) keep.push(run);
}
lines.selected.indices = keep;
"""


def brushed_runs(point_indices: Sequence[int], n_runs: int, n_axes: int) -> list[int]:
    """Runs inside every brushed axis: point ``run * n_axes + axis`` is run ``run``'s mark on ``axis``;
    an axis is brushed when any of its marks is selected. (The browser computes the same in BRUSH_JS.)"""
    chosen = set(int(i) for i in point_indices)
    axes = {i % n_axes for i in chosen} if n_axes else set()
    if not axes:
        return []
    return [run for run in range(n_runs) if all(run * n_axes + a in chosen for a in axes)]


def parallel_coordinates(
    labels: Sequence[str], columns: Mapping[str, Sequence[Any]], metric: str, *, height: int = 360
) -> tuple[Any, ColumnDataSource, ColumnDataSource]:
    """Params (and last the chosen ``metric``) as vertical axes; each run a line through its values,
    coloured by the metric. Brushing: box-select marks on one axis (shift + drag adds another axis); the
    runs inside every brushed range stay lit (``BRUSH_JS`` in the browser, ``brushed_runs`` on the server).

    Returns the figure, the lines' source (``selected.indices`` are runs) and the marks' source
    (``selected.indices`` are ``run * n_axes + axis``).
    """
    names = list(columns)
    n_axes, n_runs = len(names), len(labels)
    positions = [axis_positions(columns[name]) for name in names]
    ys = np.array([p[0] for p in positions]).T if n_axes else np.zeros((n_runs, 0))
    metric_values = np.asarray([_as_float(v) for v in columns.get(metric, [math.nan] * n_runs)], dtype=np.float64)
    colours = _colour_by(metric_values, lower_is_better(metric))
    lines = ColumnDataSource(
        {
            "xs": [list(range(n_axes))] * n_runs,
            "ys": [list(row) for row in ys],
            "label": list(labels),
            "colour": colours,
            metric: metric_values,
        }
    )
    marks = ColumnDataSource(
        {
            "x": [a for _ in range(n_runs) for a in range(n_axes)],
            "y": [float(ys[r, a]) for r in range(n_runs) for a in range(n_axes)],
            "label": [labels[r] for r in range(n_runs) for _ in range(n_axes)],
            "axis": [names[a] for _ in range(n_runs) for a in range(n_axes)],
            "value": [_text(columns[names[a]][r]) for r in range(n_runs) for a in range(n_axes)],
            "colour": [colours[r] for r in range(n_runs) for _ in range(n_axes)],
        }
    )
    fig = new_figure(
        f"Params vs {metric}",
        height=height,
        x_range=Range1d(start=-0.3, end=max(n_axes - 0.7, 0.7)),
        y_range=Range1d(start=-0.12, end=1.12),
        tools="reset,save",
    )
    fig.yaxis.visible = False
    fig.ygrid.grid_line_color = None
    fig.xaxis.ticker = FixedTicker(ticks=list(range(n_axes)))
    fig.xaxis.major_label_overrides = {i: name for i, name in enumerate(names)}
    fig.xgrid.grid_line_color = palette.TEXT_MUTED
    fig.xgrid.grid_line_alpha = 0.8
    fig.multi_line(
        "xs",
        "ys",
        source=lines,
        line_color="colour",
        line_width=2.5,
        line_alpha=0.9,
        nonselection_line_alpha=0.12,
        nonselection_line_color="colour",
        name="runs",
    )
    marks_renderer = fig.scatter(
        "x",
        "y",
        source=marks,
        size=9,
        fill_color="colour",
        line_color=palette.BACKGROUND_DARK,
        nonselection_fill_alpha=0.25,
        selection_line_color=palette.TEXT,
        name="marks",
    )
    for a, (_, ticks) in enumerate(positions):
        for y, text in ticks:
            fig.add_layout(
                Label(
                    x=a,
                    y=y,
                    text=text,
                    x_offset=6,
                    text_font_size="10px",
                    text_color=palette.TEXT_MUTED,
                    text_baseline="middle",
                )
            )
    brush = BoxSelectTool(renderers=[marks_renderer], dimensions="both", persistent=True)
    fig.add_tools(brush, HoverTool(renderers=[marks_renderer], tooltips=[("", "@label"), ("@axis", "@value")]))
    fig.toolbar.active_drag = brush
    marks.selected.js_on_change(
        "indices", CustomJS(args={"lines": lines, "points": marks, "axes": n_axes}, code=BRUSH_JS)
    )
    return fig, lines, marks


def param_scatter(
    labels: Sequence[str], x: Sequence[Any], y: Sequence[float], x_name: str, y_name: str, *, height: int = 360
) -> tuple[Any, ColumnDataSource]:
    """One param against one final metric, a point per run (categorical params on a factor axis)."""
    numeric = all(isinstance(v, int | float | np.number) and not isinstance(v, bool) for v in x) and len(x) > 0
    xs: list[Any] = [float(v) for v in x] if numeric else [_text(v) for v in x]
    options: dict[str, Any] = {} if numeric else {"x_range": FactorRange(factors=sorted(set(xs)))}
    if numeric and len(xs) > 1 and min(xs) > 0 and max(xs) / min(xs) >= 100:
        options["x_axis_type"] = "log"  # learning rates and the like span decades
    fig = new_figure(
        f"{y_name} vs {x_name}",
        height=height,
        x_axis_label=x_name,
        y_axis_label=y_name,
        tools="pan,wheel_zoom,box_select,tap,reset,save",
        **options,
    )
    yv = np.asarray([_as_float(v) for v in y], dtype=np.float64)
    source = ColumnDataSource(
        {
            "x": xs,
            "y": yv,
            "label": list(labels),
            "colour": _colour_by(yv, lower_is_better(y_name)),
            "xtext": [_text(v) for v in x],
        }
    )
    fig.scatter(
        "x",
        "y",
        source=source,
        size=13,
        fill_color="colour",
        line_color=palette.TEXT,
        line_width=1,
        nonselection_fill_alpha=0.25,
        name="runs",
    )
    fig.add_tools(HoverTool(tooltips=[("", "@label"), (x_name, "@xtext"), (y_name, "@y{0.[0000]}")]))
    return fig, source


def _colour_by(values: np.ndarray, lower_better: bool) -> list[str]:
    """Series colours from worst (danger) to best (success) by a metric; muted for NaN."""
    scaled = normalise_columns(values.reshape(-1, 1)).ravel() if len(values) else values
    ramp = (palette.DANGER, palette.WARNING, palette.INFO, palette.SUCCESS)
    out = []
    for s in scaled:
        if not math.isfinite(s):
            out.append(palette.TEXT_MUTED)
            continue
        goodness = 1 - s if lower_better else s
        out.append(ramp[min(int(goodness * len(ramp)), len(ramp) - 1)])
    return out


def _as_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _text(value: Any) -> str:
    return "" if value is None else str(value)
