"""The plot builders: their maths against hand-computed values, and what the Bokeh models hold."""

from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
from bokeh.embed import file_html
from bokeh.models import ColumnDataSource, GlyphRenderer, VArea
from bokeh.resources import INLINE

from aquarium.collector.store import Window
from aquarium.ui import matrix_plots, palette, param_plots, plots

XSS = "<img src=x onerror=alert(1)>"


def renderer(model: object, name: str) -> GlyphRenderer:
    found = model.select_one({"name": name})  # type: ignore[attr-defined]
    assert isinstance(found, GlyphRenderer), name
    return found


# -- smoothing --------------------------------------------------------------------------------------------
def test_moving_average_is_the_trailing_mean_with_a_short_start() -> None:
    out = plots.moving_average(np.array([1.0, 2.0, 3.0, 4.0, 5.0]), 3)
    assert out.tolist() == [1.0, 1.5, 2.0, 3.0, 4.0]


def test_moving_average_skips_non_finite_points() -> None:
    out = plots.moving_average(np.array([math.nan, 2.0, math.inf, 4.0]), 2)
    assert math.isnan(out[0]) and out[1:].tolist() == [2.0, 2.0, 4.0]


def test_moving_average_of_window_one_is_the_values() -> None:
    x = np.array([3.0, -1.0, 7.5])
    assert plots.moving_average(x, 1).tolist() == x.tolist()


@pytest.mark.parametrize("window", [0, -3])
def test_moving_average_rejects_an_empty_window(window: int) -> None:
    with pytest.raises(ValueError, match="window must be at least 1"):
        plots.moving_average(np.array([1.0]), window)


def test_ema_is_debiased_like_tensorboard() -> None:
    # weight 0.5: last = 0.5, 1.25, 1.625; debias by 1 - 0.5**n = 0.5, 0.75, 0.875
    out = plots.ema(np.array([1.0, 2.0, 2.0]), 0.5)
    assert out.tolist() == pytest.approx([1.0, 1.25 / 0.75, 1.625 / 0.875])
    # the first point is the value itself: no pull towards zero
    assert plots.ema(np.array([10.0, 10.0, 10.0]), 0.9).tolist() == pytest.approx([10.0, 10.0, 10.0])


def test_ema_passes_non_finite_points_through() -> None:
    out = plots.ema(np.array([4.0, math.nan, 2.0]), 0.5)
    assert out[0] == 4.0 and math.isnan(out[1])
    assert out[2] == pytest.approx((0.5 * 2.0 + 0.5 * 2.0) / 0.75)  # last = 2 after the first; NaN did not count


@pytest.mark.parametrize("weight", [-0.1, 1.0, 1.5])
def test_ema_rejects_a_weight_outside_0_1(weight: float) -> None:
    with pytest.raises(ValueError, match=r"EMA weight must be in \[0, 1\)"):
        plots.ema(np.array([1.0]), weight)


def test_smooth_names_its_methods() -> None:
    x = np.array([1.0, 3.0])
    assert plots.smooth(x, "moving", 2).tolist() == [1.0, 2.0]
    assert plots.smooth(x, "ema", 0.0).tolist() == [1.0, 3.0]
    with pytest.raises(ValueError, match="'moving' or 'ema'"):
        plots.smooth(x, "gaussian", 1)


def test_lower_is_better_by_name() -> None:
    assert all(plots.lower_is_better(n) for n in ("loss", "val_loss", "train/error_rate", "test.mse", "ppl"))
    assert not any(plots.lower_is_better(n) for n in ("accuracy", "f1", "power", "lower_bound_acc"))


# -- curves -----------------------------------------------------------------------------------------------
def test_training_curves_has_one_linked_subplot_per_metric() -> None:
    grid = plots.training_curves({"loss": (np.arange(3), np.array([3.0, 2.0, 1.0])), "acc": (np.arange(2), np.ones(2))})
    figures = [child[0] for child in grid.children]
    assert [f.title.text for f in figures] == ["loss", "acc"]
    assert figures[0].x_range is figures[1].x_range
    assert all(f.output_backend == "canvas" for f in figures)  # downsampled: a canvas draws them at once
    assert figures[0].background_fill_color == palette.BACKGROUND_DARK
    source = figures[0].renderers[0].data_source
    assert source.data["value"].tolist() == [3.0, 2.0, 1.0]


def test_smoothed_curves_draw_raw_and_smoothed() -> None:
    grid = plots.smoothed_curves({"loss": (np.arange(4), np.array([4.0, 2.0, 2.0, 0.0]))}, method="moving", amount=2)
    fig = grid.children[0][0]
    raw, smoothed = (r.data_source.data["value"].tolist() for r in fig.renderers)
    assert raw == [4.0, 2.0, 2.0, 0.0] and smoothed == [4.0, 3.0, 2.0, 1.0]


def window(values: list[float], rank: int | None = None, agg: str | None = None, **bands: np.ndarray) -> Window:
    steps = np.arange(len(values), dtype=np.int64)
    return Window("r", "loss", rank, agg, steps, np.array(values), None, bands.get("lo"), bands.get("hi"), len(values))


def test_rank_band_edges_are_the_per_step_min_and_max() -> None:
    ranks = [window([1.0, 5.0, 3.0], rank=0), window([3.0, 1.0, 4.0], rank=1), window([2.0, 3.0, 8.0], rank=2)]
    stacked = np.array([w.values for w in ranks])
    agg = window(stacked.mean(axis=0).tolist(), agg="all", lo=stacked.min(axis=0), hi=stacked.max(axis=0))
    fig = plots.rank_band(agg, ranks)
    band = renderer(fig, "band")
    assert isinstance(band.glyph, VArea)
    assert band.data_source.data["lower"].tolist() == [1.0, 1.0, 3.0]
    assert band.data_source.data["upper"].tolist() == [3.0, 5.0, 8.0]
    assert renderer(fig, "mean").data_source.data["value"].tolist() == pytest.approx([2.0, 3.0, 5.0])
    assert len([r for r in fig.renderers if r.name is None]) == 3  # a thin line per rank


def test_rank_band_needs_an_all_window() -> None:
    with pytest.raises(ValueError, match="agg='all'"):
        plots.rank_band(window([1.0], agg="mean"))


# -- distributions and matrices ---------------------------------------------------------------------------
def test_distribution_marks_mean_and_median() -> None:
    values = np.array([1.0, 2.0, 3.0, 10.0, math.nan])
    fig = plots.distribution(values, "accuracy", bins=4)
    spans = {s.name: s.location for s in fig.center if getattr(s, "name", None) in ("mean", "median")}
    assert spans == {"mean": 4.0, "median": 2.5}
    hist = renderer(fig, "histogram").data_source.data
    assert sum(hist["top"]) == 4  # NaN left out


def test_correlation_equals_numpy_on_the_aligned_steps() -> None:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"a": rng.normal(size=50), "b": rng.normal(size=50), "c": rng.normal(size=50)})
    frame.loc[[3, 7], "b"] = np.nan  # a metric missing at some steps
    frame.loc[11, "c"] = np.inf
    shared = frame.drop(index=[3, 7, 11])
    expected = np.corrcoef(shared.to_numpy(), rowvar=False)
    assert np.allclose(matrix_plots.correlation(frame), expected)


def test_correlation_matrix_shows_each_value() -> None:
    matrix = np.array([[1.0, -0.5], [-0.5, 1.0]])
    fig = matrix_plots.correlation_matrix(["loss", "acc"], matrix)
    cells = renderer(fig, "cells").data_source.data
    assert dict(zip(zip(cells["y"], cells["x"]), cells["r"])) == {
        ("loss", "loss"): 1.0,
        ("acc", "loss"): -0.5,
        ("loss", "acc"): -0.5,
        ("acc", "acc"): 1.0,
    }
    assert sorted(cells["text"]) == ["-0.50", "-0.50", "1.00", "1.00"]
    mapper = renderer(fig, "cells").glyph.fill_color.transform
    assert (mapper.low, mapper.high) == (-1, 1) and mapper.palette[0] == palette.DANGER


def test_normalise_columns_scales_each_column_by_itself() -> None:
    m = np.array([[0.0, 10.0, 5.0], [5.0, 30.0, 5.0], [10.0, math.nan, 5.0]])
    out = matrix_plots.normalise_columns(m)
    assert out[:, 0].tolist() == [0.0, 0.5, 1.0]
    assert out[:2, 1].tolist() == [0.0, 1.0] and math.isnan(out[2, 1])
    assert out[:, 2].tolist() == [0.5, 0.5, 0.5]


def test_metrics_heatmap_colours_normalised_and_labels_raw_values() -> None:
    fig = matrix_plots.metrics_heatmap(["run a", "run b"], ["loss", "acc"], np.array([[0.2, 90.0], [0.4, 80.0]]))
    cells = renderer(fig, "cells").data_source.data
    by_cell = {(y, x): (v, s) for x, y, v, s in zip(cells["x"], cells["y"], cells["value"], cells["scaled"])}
    assert by_cell[("run a", "loss")] == (0.2, 0.0) and by_cell[("run b", "loss")] == (0.4, 1.0)
    assert by_cell[("run a", "acc")] == (90.0, 1.0) and by_cell[("run b", "acc")] == (80.0, 0.0)


def test_repeated_row_labels_stay_distinct_factors() -> None:
    fig = matrix_plots.metrics_heatmap(["same", "same"], ["loss"], np.array([[1.0], [2.0]]))
    assert sorted(fig.y_range.factors) == ["same", "same (2)"]


# -- params vs a metric -----------------------------------------------------------------------------------
def test_axis_positions_numbers_and_categories() -> None:
    pos, ticks = param_plots.axis_positions([0.1, 0.3, 0.2])
    assert pos.tolist() == pytest.approx([0.0, 1.0, 0.5]) and [t for _, t in ticks] == ["0.1", "0.3"]
    pos, ticks = param_plots.axis_positions(["sgd", "adam", "sgd"])
    assert pos.tolist() == [1.0, 0.0, 1.0] and ticks == [(0.0, "adam"), (1.0, "sgd")]
    pos, _ = param_plots.axis_positions([1e-3, 1e-2, 1e-1])  # decades apart: log-spaced
    assert pos.tolist() == pytest.approx([0.0, 0.5, 1.0])
    pos, _ = param_plots.axis_positions([7, 7])
    assert pos.tolist() == [0.5, 0.5]


def test_brushed_runs_are_inside_every_brushed_axis() -> None:
    # 3 runs x 2 axes: point = run * 2 + axis
    assert param_plots.brushed_runs([0, 2, 4], 3, 2) == [0, 1, 2]  # axis 0 brushed around everyone
    assert param_plots.brushed_runs([0, 2, 3], 3, 2) == [1]  # axis 0 holds runs 0, 1; axis 1 only run 1
    assert param_plots.brushed_runs([], 3, 2) == []


def test_parallel_coordinates_lines_run_through_normalised_axes() -> None:
    fig, lines, marks = param_plots.parallel_coordinates(
        ["a", "b"], {"lr": [0.1, 0.3], "opt": ["sgd", "adam"], "acc": [0.5, 0.9]}, "acc"
    )
    assert lines.data["ys"] == [[0.0, 1.0, 0.0], [1.0, 0.0, 1.0]]
    assert lines.data["colour"] == [palette.DANGER, palette.SUCCESS]  # worst to best by accuracy
    assert len(marks.data["x"]) == 6
    assert fig.xaxis[0].major_label_overrides == {0: "lr", 1: "opt", 2: "acc"}
    callbacks = marks.selected.js_property_callbacks["change:indices"]
    assert "lines.selected.indices" in callbacks[0].code


def test_param_scatter_numeric_and_categorical() -> None:
    fig, source = param_plots.param_scatter(["a", "b"], [1e-4, 1e-1], [0.5, 0.7], "lr", "acc")
    assert source.data["x"] == [1e-4, 1e-1] and fig.x_scale.__class__.__name__ == "LogScale"
    fig, source = param_plots.param_scatter(["a", "b"], ["sgd", "adam"], [0.5, 0.7], "opt", "acc")
    assert fig.x_range.factors == ["adam", "sgd"]


def test_names_are_text_in_the_saved_html() -> None:
    fig = plots.overlay_curves("loss", [(XSS, np.arange(3), np.array([1.0, 2.0, 3.0]))])
    html = file_html(fig, INLINE, "t")
    # the name travels inside the JSON document (drawn as canvas text), never as markup in the page
    outside_scripts = re.sub(r"<script.*?</script>", "", html, flags=re.S)
    assert "<img" not in outside_scripts
    assert any(XSS in list(s.data.get("label", [])) for s in fig.select({"type": ColumnDataSource}))
