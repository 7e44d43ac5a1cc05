"""Matrices: the correlation of a run's metrics and the metrics heatmap (runs × final metrics,
normalised per column), pure functions from values to Bokeh models styled as ``plots`` styles
every figure; each cell is labelled with its value."""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from bokeh.models import BasicTicker, ColumnDataSource, FactorRange, HoverTool, LinearColorMapper
from bokeh.models.annotations import ColorBar

from . import palette
from .plots import _empty, new_figure

if TYPE_CHECKING:
    import pandas as pd


def aligned(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows (steps) where every column has a finite value: the points two metrics share."""
    finite = frame.replace([np.inf, -np.inf], np.nan)
    return finite.dropna(how="any")


def correlation(frame: pd.DataFrame) -> np.ndarray:
    """Pearson correlation of the columns over the steps where all of them are finite (``aligned``);
    NaN where fewer than two such steps exist or a column is constant there."""
    rows = aligned(frame).to_numpy(dtype=np.float64)
    k = frame.shape[1]
    if len(rows) < 2:
        return np.full((k, k), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.atleast_2d(np.corrcoef(rows, rowvar=False))


def _matrix_figure(title: str, rows: Sequence[str], columns: Sequence[str], height: int | None) -> Any:
    size = max(260, 48 * len(rows) + 90)
    fig = new_figure(
        title,
        height=height or size,
        x_range=FactorRange(factors=list(columns)),
        y_range=FactorRange(factors=list(reversed(rows))),
        tools="hover,save",
        x_axis_location="above",
    )
    fig.xaxis.major_label_orientation = 0.6 if max((len(c) for c in columns), default=0) > 8 else 0
    fig.grid.grid_line_color = None
    return fig


def correlation_matrix(names: Sequence[str], matrix: np.ndarray, *, height: int | None = None) -> Any:
    """A correlation heatmap with the value in each cell, red (-1) through neutral to blue (+1)."""
    names = [str(n) for n in names]
    fig = _matrix_figure("Correlation between metrics", names, names, height)
    if not names:
        return _empty(fig, "No metrics logged")
    xs, ys = np.meshgrid(np.arange(len(names)), np.arange(len(names)))
    r = np.asarray(matrix, dtype=np.float64)[ys.ravel(), xs.ravel()]
    source = ColumnDataSource(
        {
            "x": [names[i] for i in xs.ravel()],
            "y": [names[j] for j in ys.ravel()],
            "r": r,
            "text": ["" if not math.isfinite(v) else f"{v:.2f}" for v in r],
            "text_colour": [palette.BACKGROUND_DARK if math.isfinite(v) and abs(v) < 0.55 else palette.TEXT for v in r],
        }
    )
    mapper = LinearColorMapper(palette=list(palette.DIVERGING), low=-1, high=1, nan_color=palette.BACKGROUND)
    _labelled_cells(fig, source, "r", mapper, "12px")
    fig.select_one(HoverTool).tooltips = [("", "@y × @x"), ("r", "@r{0.000}")]
    bar = ColorBar(
        color_mapper=mapper,
        ticker=BasicTicker(desired_num_ticks=5),
        background_fill_color=palette.BACKGROUND,
        major_label_text_color=palette.TEXT_MUTED,
        width=10,
    )
    fig.add_layout(bar, "right")
    return fig


def normalise_columns(matrix: np.ndarray) -> np.ndarray:
    """Each column scaled to 0..1 by its own finite min and max; a constant column is 0.5, NaN stays NaN."""
    m = np.asarray(matrix, dtype=np.float64)
    if m.size == 0:
        return m.copy()
    finite = np.where(np.isfinite(m), m, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column: its min and max are NaN
        lo, hi = np.nanmin(finite, axis=0), np.nanmax(finite, axis=0)
    span = hi - lo
    with np.errstate(invalid="ignore", divide="ignore"):
        out: np.ndarray = (finite - lo) / np.where(span > 0, span, 1.0)
    out[:, ~(span > 0)] = 0.5
    out[~np.isfinite(finite)] = np.nan
    return out


def metrics_heatmap(
    rows: Sequence[str],
    columns: Sequence[str],
    matrix: np.ndarray,
    *,
    title: str = "Final metrics",
    height: int | None = None,
) -> Any:
    """Rows (runs, or step ranges of one run) × metrics, coloured per column from its min to its max
    (``normalise_columns``) so metrics of any scale compare; the cell text is the raw value."""
    rows, columns = [str(r) for r in rows], [str(c) for c in columns]
    fig = _matrix_figure(title, _unique(rows), _unique(columns), height)
    if not rows or not columns:
        return _empty(fig, "No runs with metrics")
    values = np.asarray(matrix, dtype=np.float64)
    scaled = normalise_columns(values)
    i, j = np.meshgrid(np.arange(len(rows)), np.arange(len(columns)), indexing="ij")
    flat_values, flat_scaled = values.ravel(), scaled.ravel()
    source = ColumnDataSource(
        {
            "x": [_unique(columns)[c] for c in j.ravel()],
            "y": [_unique(rows)[r] for r in i.ravel()],
            "value": flat_values,
            "scaled": flat_scaled,
            "text": ["–" if not math.isfinite(v) else f"{v:.4g}" for v in flat_values],
            "text_colour": [
                palette.BACKGROUND_DARK if math.isfinite(s) and s > 0.7 else palette.TEXT for s in flat_scaled
            ],
        }
    )
    mapper = LinearColorMapper(palette=list(palette.SEQUENTIAL), low=0, high=1, nan_color=palette.BACKGROUND)
    _labelled_cells(fig, source, "scaled", mapper, "11px")
    fig.select_one(HoverTool).tooltips = [
        ("", "@y"),
        ("metric", "@x"),
        ("value", "@value"),
        ("scaled", "@scaled{0.00}"),
    ]
    return fig


def _unique(labels: Sequence[str]) -> list[str]:
    """Factor labels must be unique: repeated ones get " (2)", " (3)", ..."""
    seen: dict[str, int] = {}
    out = []
    for label in labels:
        seen[label] = seen.get(label, 0) + 1
        out.append(label if seen[label] == 1 else f"{label} ({seen[label]})")
    return out


def _labelled_cells(fig: Any, source: Any, field: str, mapper: Any, font_size: str) -> None:
    """A matrix drawn as one coloured square per (x, y) cell of ``source``, its ``text`` centred in it."""
    fig.rect("x", "y", 1, 1, source=source, fill_color={"field": field, "transform": mapper},
             line_color=palette.BACKGROUND, name="cells")  # fmt: skip
    fig.text("x", "y", text="text", source=source, text_align="center", text_baseline="middle",
             text_color="text_colour", text_font_size=font_size)  # fmt: skip
