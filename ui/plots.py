"""Plot builders: pure functions from data (numpy arrays, ``Window``s, DataFrames) to Bokeh models
(params against a final metric are in ``param_plots``).

No I/O here: the views and the seed component read through ``Api`` (which downsamples on the
server to about the plot's pixel width) and hand the arrays in; these functions only compute the
few derived series a plot shows (smoothing, bands, correlations, per-column normalisation) and draw.
Every figure is styled for the dark page (``palette``) and drawn on a canvas: each curve comes
downsampled to about the plot's width, which a canvas draws at once, while copying a WebGL plot to
the page took seconds for four plots in a browser without a GPU (Bokeh's blit_webgl, the page
frozen meanwhile). The run view's live charts (``live_curves``) choose WebGL themselves.
Names (runs, params, metrics) are data: Bokeh draws titles, axes, legends and tick labels
on a canvas and renders tooltip fields and table cells as text, so none of them is ever parsed as HTML.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from bokeh.layouts import gridplot
from bokeh.models import (
    ColumnDataSource,
    CustomJS,
    GridPlot,
    HoverTool,
)
from bokeh.models.annotations import Label, Legend, LegendItem, Span
from bokeh.plotting import figure

from . import palette
from .smoothing import ema, moving_average

if TYPE_CHECKING:
    from aquarium.collector.store import Window

Curve = tuple[np.ndarray, np.ndarray]
"""A series as (steps, values)."""

LOSS_WORDS = ("loss", "error", "err", "perplexity", "ppl", "mse", "mae", "rmse", "nll", "cost", "regret", "wer", "cer")
"""Metric names containing one of these are better when lower; anything else is better when higher."""

WIDTH, HEIGHT = 520, 300


# -- styling --------------------------------------------------------------------------------------------
def new_figure(title: str = "", *, width: int = WIDTH, height: int = HEIGHT, **options: Any) -> Any:
    """A figure styled for the dark page, drawn on a canvas, responsive to its container's width."""
    options.setdefault("output_backend", "canvas")
    options.setdefault("tools", "pan,wheel_zoom,box_zoom,reset,save")
    options.setdefault("sizing_mode", "stretch_width")
    fig = figure(title=title, width=width, height=height, **options)
    style(fig)
    return fig


def style(fig: Any) -> Any:
    """Dark backgrounds, muted axes and grids, light text: the seed's colour scheme."""
    fig.background_fill_color = palette.BACKGROUND_DARK
    fig.border_fill_color = palette.BACKGROUND
    fig.outline_line_color = palette.GRID
    fig.title.text_color = palette.TEXT
    fig.title.text_font_size = "13px"
    for axis in (*fig.xaxis, *fig.yaxis):
        axis.axis_line_color = palette.GRID
        axis.major_tick_line_color = palette.GRID
        axis.minor_tick_line_color = None
        axis.major_label_text_color = palette.TEXT_MUTED
        axis.axis_label_text_color = palette.TEXT_MUTED
        axis.axis_label_text_font_style = "normal"
    for grid in (*fig.xgrid, *fig.ygrid):
        grid.grid_line_color = palette.GRID
        grid.grid_line_alpha = 0.6
    fig.toolbar.logo = None
    fig.toolbar.autohide = True
    return fig


def _style_legend(fig: Any) -> None:
    if not fig.legend:
        return
    legend = fig.legend[0]
    legend.background_fill_color = palette.BACKGROUND
    legend.background_fill_alpha = 0.85
    legend.border_line_color = palette.GRID
    legend.label_text_color = palette.TEXT
    legend.label_text_font_size = "11px"
    legend.click_policy = "hide"
    legend.location = "top_right"


def _empty(fig: Any, message: str) -> Any:
    fig.add_layout(Label(x=10, y=10, x_units="screen", y_units="screen", text=message, text_color=palette.TEXT_MUTED))
    return fig


def lower_is_better(metric: str) -> bool:
    """Whether a metric's best value is its minimum, judged by its name: "val_loss", "error_rate",
    "test/mse" are; "accuracy", "f1", "power" are not (short words count only as whole words)."""
    lowered = metric.lower()
    words = set(re.split(r"[^a-z0-9]+", lowered))
    return "loss" in lowered or "error" in lowered or bool(words & set(LOSS_WORDS))


# -- smoothing ------------------------------------------------------------------------------------------
def smooth(values: np.ndarray, method: str, amount: float) -> np.ndarray:
    """``moving_average(values, int(amount))`` for method "moving", ``ema(values, amount)`` for "ema"."""
    if method == "moving":
        return moving_average(values, int(amount))
    if method == "ema":
        return ema(values, float(amount))
    raise ValueError(f"smoothing method must be 'moving' or 'ema', not {method!r}")


# -- curves ---------------------------------------------------------------------------------------------
def _line_source(steps: np.ndarray, values: np.ndarray, **extra: Any) -> ColumnDataSource:
    return ColumnDataSource({"step": np.asarray(steps), "value": np.asarray(values, dtype=np.float64), **extra})


def _curve_hover(fig: Any, label: str = "@label") -> None:
    fig.add_tools(
        HoverTool(
            tooltips=[("", label), ("step", "@step"), ("value", "@value{0.[0000]}")],
            mode="vline",
            line_policy="nearest",
        )
    )


def _grid(figures: list[Any], ncols: int) -> GridPlot:
    for f in figures[1:]:
        f.x_range = figures[0].x_range  # zooming one step range zooms them all
    return gridplot(figures, ncols=ncols, sizing_mode="stretch_width", toolbar_location="right", merge_tools=True)


def training_curves(curves: Mapping[str, Curve], *, ncols: int = 2, height: int = HEIGHT) -> GridPlot:
    """One subplot per metric (the seed's ``create_training_curves``), step axes linked."""
    figures = []
    for i, (name, (steps, values)) in enumerate(curves.items()):
        fig = new_figure(name, height=height, x_axis_label="step")
        fig.line(
            "step",
            "value",
            source=_line_source(steps, values, label=[name] * len(steps)),
            line_color=palette.series_colour(i),
            line_width=2,
        )
        _curve_hover(fig)
        if not len(steps):
            _empty(fig, "no points")
        figures.append(fig)
    if not figures:
        figures.append(_empty(new_figure("Training curves", height=height), "No metrics logged"))
    return _grid(figures, ncols)


def smoothed_curves(
    curves: Mapping[str, Curve], *, method: str = "moving", amount: float = 10, ncols: int = 2, height: int = HEIGHT
) -> GridPlot:
    """Each metric raw (faint) under its smoothed line: moving average over ``amount`` points, or EMA
    with weight ``amount`` (the seed's ``create_smoothed_curves(window_size=10)`` is method "moving")."""
    label = f"moving average ({int(amount)})" if method == "moving" else f"EMA ({amount:g})"
    figures = []
    for i, (name, (steps, values)) in enumerate(curves.items()):
        colour = palette.series_colour(i)
        fig = new_figure(name, height=height, x_axis_label="step")
        raw = fig.line(
            "step", "value", source=_line_source(steps, values), line_color=colour, line_alpha=0.25, legend_label="raw"
        )
        smoothed = _line_source(
            steps, smooth(np.asarray(values, dtype=np.float64), method, amount), label=[name] * len(steps)
        )
        fig.line("step", "value", source=smoothed, line_color=colour, line_width=2, legend_label=label)
        raw.tags = ["raw"]
        _curve_hover(fig)
        _style_legend(fig)
        figures.append(fig)
    if not figures:
        figures.append(_empty(new_figure("Smoothed curves", height=height), "No metrics logged"))
    return _grid(figures, ncols)


def rank_band(
    aggregate: Window, ranks: Sequence[Window] = (), *, title: str | None = None, height: int = HEIGHT
) -> Any:
    """The mean across ranks as a line over the min..max band (``varea``), plus one thin line per rank.

    ``aggregate`` is an ``agg="all"`` window (``values`` the mean, ``min``/``max`` the band); the band's
    edges are exactly those arrays, step by step.
    """
    if aggregate.min is None or aggregate.max is None:
        raise ValueError("rank_band needs an agg='all' window (with min and max)")
    fig = new_figure(title or aggregate.key, height=height, x_axis_label="step")
    band = ColumnDataSource({"step": aggregate.steps, "lower": aggregate.min, "upper": aggregate.max})
    fig.varea(
        x="step",
        y1="lower",
        y2="upper",
        source=band,
        fill_color=palette.INFO,
        fill_alpha=0.18,
        legend_label="min..max across ranks",
        name="band",
    )
    for i, w in enumerate(ranks):
        fig.line(
            "step",
            "value",
            source=_line_source(w.steps, w.values, label=[f"rank {w.rank}"] * len(w)),
            line_color=palette.series_colour(i + 1),
            line_width=1,
            line_alpha=0.7,
            legend_label=f"rank {w.rank}",
        )
    fig.line(
        "step",
        "value",
        source=_line_source(aggregate.steps, aggregate.values, label=["mean"] * len(aggregate)),
        line_color=palette.INFO,
        line_width=2.5,
        legend_label="mean",
        name="mean",
    )
    _curve_hover(fig)
    _style_legend(fig)
    return fig


def overlay_curves(metric: str, curves: Sequence[tuple[str, np.ndarray, np.ndarray]], *, height: int = HEIGHT) -> Any:
    """One metric of several runs on one figure: a line per ``(run label, steps, values)``, all
    drawn by one MultiLine glyph (one data source, ``curve_columns``) with a legend entry per run.
    One glyph instead of one per run: a tenth of the models to build, send and lay out when ten
    runs are compared, and the run's name is one value per line, not one per point."""
    fig = new_figure(metric, height=height, x_axis_label="step", y_axis_label=metric)
    source = ColumnDataSource(curve_columns(curves))
    lines = fig.multi_line(
        "xs", "ys", source=source, line_color="colour", line_alpha="alpha", line_width=2, name="curves"
    )
    legend = Legend(
        items=[LegendItem(label=label or " ", renderers=[lines], index=i) for i, (label, _, _) in enumerate(curves)]
    )
    legend.js_on_event("legend_item_click", CustomJS(args={"source": source}, code=_TOGGLE_LINE))
    fig.add_layout(legend)
    fig.add_tools(
        HoverTool(
            renderers=[lines],
            tooltips=[("", "@label"), ("step", "$snap_x{0,0}"), ("value", "$snap_y{0.[0000]}")],
            line_policy="nearest",
        )
    )
    _style_legend(fig)
    legend.click_policy = "none"  # a click dims that run's line only (_TOGGLE_LINE), not the whole glyph
    if not curves:
        _empty(fig, "no run logged this metric")
    return fig


_TOGGLE_LINE = """
const i = cb_obj.item.index, alpha = source.data.alpha;
alpha[i] = alpha[i] > 0.5 ? 0.1 : 1.0;
source.change.emit();
"""
"""A legend click on an overlay: that run's line fades out (its legend swatch with it), or back."""


def curve_columns(curves: Sequence[tuple[str, np.ndarray, np.ndarray]]) -> dict[str, Any]:
    """An overlay's MultiLine data: per run its steps (``xs``), values (``ys``), label and colour."""
    return {
        "xs": [np.asarray(steps) for _, steps, _ in curves],
        "ys": [np.asarray(values, dtype=np.float64) for _, _, values in curves],
        "label": [label for label, _, _ in curves],
        "colour": [palette.series_colour(i) for i in range(len(curves))],
        "alpha": [1.0] * len(curves),
    }


# -- distributions and matrices -------------------------------------------------------------------------
def distribution(values: np.ndarray, name: str, *, bins: int = 30, height: int = HEIGHT) -> Any:
    """A histogram of a metric's finite values with its mean and median marked (the seed's
    ``create_distribution_plot``)."""
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    fig = new_figure(f"Distribution of {name}", height=height, x_axis_label=name, y_axis_label="count")
    if not len(x):
        return _empty(fig, "no finite values")
    counts, edges = np.histogram(x, bins=bins)
    fig.quad(
        top=counts,
        bottom=0,
        left=edges[:-1],
        right=edges[1:],
        fill_color=palette.SEQUENTIAL[6],
        line_color=palette.BACKGROUND_DARK,
        fill_alpha=0.9,
        name="histogram",
    )
    mean, median = float(np.mean(x)), float(np.median(x))
    for value, colour, label in ((mean, palette.WARNING, "mean"), (median, palette.SUCCESS, "median")):
        fig.add_layout(
            Span(location=value, dimension="height", line_color=colour, line_width=2, line_dash="dashed", name=label)
        )
        fig.line(
            [value, value],
            [0, 0],
            line_color=colour,
            line_width=2,
            line_dash="dashed",
            legend_label=f"{label} {value:.4g}",
        )
    fig.y_range.start = 0
    _style_legend(fig)
    return fig
