"""The seed's ``MetricsVisualizerComponent`` and ``compare_experiments`` plots, over a real store."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from bokeh.models import GridPlot, LayoutDOM, Model
from bokeh.models.widgets.tables import DataTable

from aquarium.agent import ExperimentTracker
from aquarium.ui import ExperimentManager, MetricsVisualizerComponent
from aquarium.ui.compat import ComparisonPlot, SeedPlot, step_bins

XSS = "<img src=x onerror=alert(1)>"


@pytest.fixture
def experiment_ids(tmp_path: Path) -> list[str]:
    ids = []
    for n, lr in enumerate((0.1, 0.01)):
        tracker = ExperimentTracker(XSS if n else "baseline", base_dir=tmp_path, mode="offline")
        tracker.log_hyperparameters({"lr": lr, "batch_size": 32})
        for step in range(40):
            tracker.log_metrics({"loss": 1.0 / (step + 1) + lr, "accuracy": 0.5 + step / 100 + n * 0.05}, step=step)
        tracker.finish()
        ids.append(tracker.experiment_id)
    return ids


def test_visualizer_methods_return_bokeh_models_that_save(tmp_path: Path, experiment_ids: list[str]) -> None:
    with ExperimentManager(tmp_path) as manager:
        experiment = manager.get_experiment(experiment_ids[0])
        assert experiment is not None
        visualizer = MetricsVisualizerComponent(experiment)
        results = {
            "curves": visualizer.create_training_curves(),
            "smoothed": visualizer.create_smoothed_curves(window_size=10),
            "distribution": visualizer.create_distribution_plot("accuracy"),
            "correlation": visualizer.create_correlation_matrix(),
            "heatmap": visualizer.create_metrics_heatmap(),
        }
    for name, result in results.items():
        assert isinstance(result, SeedPlot) and isinstance(result.model, LayoutDOM), name
        assert callable(result.show)
        html = result.save(tmp_path / f"{name}.html").read_text()
        assert "cdn.bokeh.org" not in html and "Bokeh.embed" in html, name
    assert isinstance(results["curves"].model, GridPlot)
    # the data is in the saved files: the last accuracy (0.5 + 39/100) and the loss/accuracy correlation cells
    assert "0.89" in (tmp_path / "curves.html").read_text()
    assert "accuracy" in (tmp_path / "correlation.html").read_text()
    cells = results["correlation"].model.select_one({"name": "cells"}).data_source.data
    r = dict(zip(zip(cells["y"], cells["x"]), cells["r"]))
    steps = np.arange(40)
    expected = np.corrcoef(1.0 / (steps + 1) + 0.1, 0.5 + steps / 100)[0, 1]
    assert r[("accuracy", "loss")] == pytest.approx(expected)


def test_step_bins_average_each_range() -> None:
    rows, matrix = step_bins({"a": (np.arange(4), np.array([1.0, 3.0, 5.0, 7.0]))}, bins=2)
    assert rows == ["steps 0–1", "steps 2–3"] and matrix[:, 0].tolist() == [2.0, 6.0]


def test_compare_experiments_returns_the_plots(tmp_path: Path, experiment_ids: list[str]) -> None:
    with ExperimentManager(tmp_path) as manager:
        plots = manager.compare_experiments(experiment_ids, ["accuracy", "loss"])
    assert set(plots) == {"comparison_accuracy", "comparison_loss", "hyperparameter_comparison"}
    loss = plots["comparison_loss"]
    assert isinstance(loss, ComparisonPlot) and isinstance(loss.model, Model)
    lines = loss.model.select_one({"name": "curves"}).data_source.data
    assert len(lines["ys"]) == 2 and lines["label"][1] == XSS
    assert loss[experiment_ids[0]]["values"][0] == pytest.approx(1.1)  # the data stays readable by id
    table = plots["hyperparameter_comparison"].model
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert isinstance(table, DataTable) and [c.title for c in table.columns] == ["param", "baseline", escaped]
    saved = plots["hyperparameter_comparison"].save(tmp_path / "params.html")
    assert "batch_size" in saved.read_text() and "0.01" in saved.read_text()
    shown_as_text_in_chromium(saved)


def shown_as_text_in_chromium(saved: Path) -> None:
    """The saved table, opened in Chromium: the name is a header's text, no element is made of it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(saved.as_uri())
        page.get_by_text(XSS).first.wait_for(timeout=20000)
        assert page.locator("img").count() == 0 and dialogs == []
        browser.close()
