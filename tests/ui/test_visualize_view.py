"""VisualizeView on a real store: the seed's charts hold the run's data; the page in real Chromium."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_compare_view import SCREENSHOTS, XSS, browser, open_page, pixel_spread, seed_runs, serve

from aquarium.collector import Api
from aquarium.ui import matrix_plots, plots
from aquarium.ui.views.visualize import VisualizeView

__all__ = ["browser", "serve"]  # fixtures shared with the compare view's tests


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Api, list[str]]]:
    ids = seed_runs(tmp_path / "data")
    with Api(tmp_path / "data") as api:
        yield api, ids


def figures(pane: Any) -> list[Any]:
    return [child[0] for child in pane.object.children]


def test_training_curves_one_subplot_per_metric(seeded: tuple[Api, list[str]]) -> None:
    api, ids = seeded
    view = VisualizeView(api, ids)
    assert view.run == "r1"
    shown = figures(view._training)
    assert [f.title.text for f in shown] == ["accuracy", "loss"]
    assert shown[1].renderers[0].data_source.data["value"].tolist() == api.series("r1", "loss").values.tolist()


def test_smoothing_follows_the_window_and_the_ema_option(seeded: tuple[Api, list[str]]) -> None:
    api, ids = seeded
    view = VisualizeView(api, ids)
    loss = api.series("r1", "loss").values

    def smoothed() -> list[float]:
        return list(figures(view._smoothed)[1].renderers[1].data_source.data["value"])

    assert smoothed() == pytest.approx(plots.moving_average(loss, 10).tolist())
    view.window = 25
    assert smoothed() == pytest.approx(plots.moving_average(loss, 25).tolist())
    view.method, view.weight = "ema", 0.8
    assert smoothed() == pytest.approx(plots.ema(loss, 0.8).tolist())
    assert smoothed()[0] == pytest.approx(loss[0])  # debiased: the first point is not pulled to 0


def test_distribution_marks_the_metric_mean_and_median(seeded: tuple[Api, list[str]]) -> None:
    api, ids = seeded
    view = VisualizeView(api, ids)
    assert view.metric == "accuracy"
    spans = {s.name: s.location for s in view._distribution.object.center if s.name in ("mean", "median")}
    values = api.series("r1", "accuracy").values
    assert spans == pytest.approx({"mean": float(values.mean()), "median": float(np.median(values))})


def test_correlation_and_heatmap(seeded: tuple[Api, list[str]]) -> None:
    api, ids = seeded
    view = VisualizeView(api, ids)
    cells = view._correlation.object.select_one({"name": "cells"}).data_source.data
    r = dict(zip(zip(cells["y"], cells["x"]), cells["r"]))
    expected = np.corrcoef(api.series("r1", "accuracy").values, api.series("r1", "loss").values)[0, 1]
    assert r[("accuracy", "loss")] == pytest.approx(expected)
    heat = view._heatmap.object.select_one({"name": "cells"}).data_source.data
    assert sorted(set(heat["y"])) == sorted(["baseline", XSS, "wide"])
    loss_scaled = {y: s for x, y, s in zip(heat["x"], heat["y"], heat["scaled"]) if x == "loss"}
    assert loss_scaled["baseline"] == 0.0 and loss_scaled["wide"] == 1.0  # normalised per column


def test_picking_another_run_redraws_its_charts(seeded: tuple[Api, list[str]]) -> None:
    api, ids = seeded
    view = VisualizeView(api, ids)
    view.run = "r3"
    loss = figures(view._training)[1].renderers[0].data_source.data["value"]
    assert loss.tolist() == api.series("r3", "loss").values.tolist()


def test_visualize_page_in_chromium(
    seeded: tuple[Api, list[str]], serve: Callable[[Callable[[], Any]], str], browser: Any
) -> None:
    api, ids = seeded
    page, errors = open_page(browser, serve(lambda: VisualizeView(api, ids)))
    page.get_by_text("Training curves").wait_for()
    page.get_by_text("Metrics heatmap").wait_for()
    page.get_by_role("button", name="EMA (debiased)").click()
    page.get_by_text("EMA weight").wait_for()
    # the browser's document now holds the EMA legend: the server redrew the smoothed curves
    page.wait_for_function(
        """() => Bokeh.documents.some(d => [...d.all_models].some(
             m => m.type === 'LegendItem' && JSON.stringify(m.label).includes('EMA (0.6)')))""",
        timeout=20000,
    )
    assert page.locator("img[src=x]").count() == 0
    page.mouse.move(0, 0)  # no tooltip over the sliders in the screenshot
    page.get_by_text("EMA weight").wait_for()
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = page.screenshot(path=str(SCREENSHOTS / "visualize.png"), full_page=True)
    assert pixel_spread(shot) > 10
    assert errors == []


def test_a_run_without_metrics_shows_empty_charts(tmp_path: Path) -> None:
    from batches import make_batch

    from aquarium.collector import Store

    with Store(tmp_path / "data") as store:
        store.ingest([make_batch(0, [], [], run="empty", params={"lr": 0.1})])
    with Api(tmp_path / "data") as api:
        view = VisualizeView(api, ["empty"])
        assert view.metric is None
        assert figures(view._training)[0].title.text == "Training curves"  # the "No metrics logged" placeholder
        assert view._correlation.object.x_range.factors == []
        view.__panel__()


def test_correlation_of_downsampled_metrics_is_close_to_the_full_one(
    seeded: tuple[Api, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    api, ids = seeded
    full = matrix_plots.correlation(VisualizeView(api, ids).history())[0, 1]
    monkeypatch.setattr("aquarium.ui.views.visualize.FULL_READ", 60)  # 200 points per metric: downsampled
    view = VisualizeView(api, ids)
    history = view.history()
    assert history["loss"].count() > 60  # interpolated onto the accuracy's steps too
    assert matrix_plots.correlation(history)[0, 1] == pytest.approx(full, abs=0.05)
