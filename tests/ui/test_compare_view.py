"""CompareView on a real store: what its models hold, and the page in real Chromium."""

from __future__ import annotations

import asyncio
import io
import math
import socket
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import panel as pn
import pytest
from batches import make_batch
from conftest import SHOTS as SCREENSHOTS
from PIL import Image

from aquarium.collector import Api, Store
from aquarium.ui.views.compare import CompareView, differing, render_png

XSS = "<img src=x onerror=alert(1)>"
RUNS = [
    ("r1", "baseline", {"lr": 0.1, "batch_size": 32, "optimizer": "sgd", "seed": 1}),
    ("r2", XSS, {"lr": 0.01, "batch_size": 32, "optimizer": XSS, "seed": 1}),
    ("r3", "wide", {"lr": 0.001, "batch_size": 64, "optimizer": "adam", "seed": 1}),
]


def seed_runs(path: Path) -> list[str]:
    """Three runs through the store's ingest of wire batches: loss falls, accuracy rises, then completed."""
    batches = []
    for n, (run, name, params) in enumerate(RUNS):
        steps = list(range(200))
        loss = [2.0 * math.exp(-s / (40 + 20 * n)) + 0.1 * n + 0.02 * math.sin(s) for s in steps]
        acc = [0.5 + 0.4 * (1 - math.exp(-s / (30 + 10 * n))) - 0.03 * n for s in steps]
        acc[150] = 0.95 - 0.1 * n  # the best accuracy is not the last one
        batches += [
            make_batch(
                0, steps, loss, run=run, key="loss", params=params, meta={"name": name}, status=[("running", 1.7e9)]
            ),
            make_batch(1, steps, acc, run=run, key="accuracy"),
            make_batch(2, [], [], run=run, status=[("completed", 1.7e9 + 600 + 60 * n)]),
        ]
    with Store(path) as store:
        store.ingest(batches)
    return [run for run, _, _ in RUNS]


@pytest.fixture
def seeded(tmp_path: Path) -> Iterator[tuple[Api, list[str]]]:
    ids = seed_runs(tmp_path / "data")
    with Api(tmp_path / "data") as api:
        yield api, ids


# -- models -----------------------------------------------------------------------------------------------
def test_differences_only_hides_equal_params(seeded: tuple[Api, list[str]]) -> None:
    view = CompareView(*seeded)
    assert list(view._params_table.value["param"]) == ["batch_size", "lr", "optimizer", "seed"]
    styles = view._param_colours(view._params_table.value["run0"])
    assert styles[-1] == "" and all(s for s in styles[:-1])  # seed (equal) plain; the rest highlighted
    view.differences_only = True
    table = view._params_table.value.set_index("param")
    assert list(table.index) == ["batch_size", "lr", "optimizer"]
    assert list(table.loc["lr"]) == [0.1, 0.01, 0.001]


def test_differing_counts_a_missing_param_as_a_difference() -> None:
    import pandas as pd

    frame = pd.DataFrame({"run0": [1, ""], "run1": [1, 2]}, index=["a", "b"])
    assert differing(frame).tolist() == [False, True]


def test_best_value_and_step_min_or_max_per_metric(seeded: tuple[Api, list[str]]) -> None:
    view = CompareView(*seeded)
    assert view.maximised == ["accuracy"]  # loss is minimised by its name
    perf = view._perf_table.value.set_index("metric")
    assert perf.loc["accuracy", "run0"] == "0.95 @ step 150"
    last = 0.5 + 0.4 * (1 - math.exp(-199 / 50)) - 0.06  # run 2's spike at step 150 (0.75) is lower
    assert perf.loc["accuracy", "run2"] == f"{last:.5g} @ step 199"
    loss = seeded[0].series("r1", "loss")
    assert perf.loc["loss", "run0"] == f"{loss.values.min():.5g} @ step {int(loss.steps[np.argmin(loss.values)])}"
    view.maximised = []  # the user switches accuracy to "min"
    assert view._perf_table.value.set_index("metric").loc["accuracy", "goal"] == "min"
    assert view._perf_table.value.set_index("metric").loc["accuracy", "run0"] == "0.5 @ step 0"


def test_overlaid_curves_one_line_per_run(seeded: tuple[Api, list[str]]) -> None:
    view = CompareView(*seeded)
    grid = view._curves.object
    figures = [child[0] for child in grid.children]
    assert [f.title.text for f in figures] == ["accuracy", "loss"]
    lines = figures[1].select_one({"name": "curves"}).data_source.data  # one MultiLine: a row per run
    assert lines["label"] == ["baseline", XSS, "wide"] and len(lines["xs"]) == len(lines["ys"]) == 3
    assert [item.label.value for item in figures[1].legend[0].items] == ["baseline", XSS, "wide"]
    view.metrics = ["loss"]
    assert [c[0].title.text for c in view._curves.object.children] == ["loss"]


def test_brushing_selects_runs_and_highlights_their_column(seeded: tuple[Api, list[str]]) -> None:
    view = CompareView(*seeded)
    marks = view._parallel.object.select_one({"name": "marks"}).data_source
    n_axes = len(set(marks.data["x"]))
    # brush the last axis (accuracy) around runs 0 and 1
    view._brushed([0 * n_axes + n_axes - 1, 1 * n_axes + n_axes - 1], n_axes)
    assert view.selected == ["r1", "r2"]
    column = view._params_table.value["run1"]
    assert all("background-color: #8a6d3b" in s for s in view._param_colours(column))


def test_card_and_titles_escape_names(seeded: tuple[Api, list[str]]) -> None:
    view = CompareView(*seeded)
    assert XSS not in view._cards.object and "&lt;img src=x onerror=alert(1)&gt;" in view._cards.object
    assert view._titles()["run1"] == "&lt;img src=x onerror=alert(1)&gt;"
    saved = view.comparison_html()
    assert "cdn.bokeh.org" not in saved and "0.95 @ step 150" in saved


# -- in Chromium ------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


PAGE_CSS = "body { background: #2b3e50; margin: 0; font-family: sans-serif; }"


@pytest.fixture
def serve(browser: Any) -> Iterator[Callable[[Callable[[], Any]], str]]:
    """Serve a view factory on a free port (one session per page); yields the URL maker.

    The browser's pages are closed before the servers stop, and the servers stop before the
    browser goes: a session's websocket is never cut while the server still writes to it."""
    servers: list[Any] = []

    def start(factory: Callable[[], Any]) -> str:
        port = free_port()

        def page() -> Any:
            return pn.Column(
                factory(), stylesheets=[PAGE_CSS], styles={"background": "#2b3e50"}, sizing_mode="stretch_width"
            )

        pn.config.raw_css = [PAGE_CSS]
        pn.config.theme = "dark"  # the app shell's theme: widgets drawn for a dark page
        servers.append(
            pn.serve(
                page, port=port, address="127.0.0.1", show=False, threaded=True, websocket_origin=[f"127.0.0.1:{port}"]
            )
        )
        return f"http://127.0.0.1:{port}/"

    yield start
    for context in browser.contexts:
        for page in context.pages:
            page.close()
    for server in servers:
        server.stop()


@pytest.fixture
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path="/usr/bin/chromium",
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


def open_page(browser: Any, url: str) -> tuple[Any, list[str]]:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(url)
    page.wait_for_function(
        "() => window.Bokeh && Bokeh.documents.length > 0 && Bokeh.documents[0].roots().length > 0", timeout=30000
    )
    page.wait_for_selector("canvas", state="attached", timeout=30000)
    return page, errors


def pixel_spread(png: bytes) -> float:
    image = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float64)
    return float(image.std())


def test_compare_page_in_chromium_saves_html_and_png(
    seeded: tuple[Api, list[str]], serve: Callable[[Callable[[], Any]], str], browser: Any, tmp_path: Path
) -> None:
    api, ids = seeded
    page, errors = open_page(browser, serve(lambda: CompareView(api, ids)))
    page.get_by_text("Comparing 3 runs").wait_for()
    page.get_by_text(XSS).first.wait_for()  # the name shows as text ...
    assert page.locator("img[src=x]").count() == 0  # ... and no element was made of it
    page.get_by_text("0.95 @ step 150").first.wait_for()
    assert page.get_by_role("gridcell", name="seed", exact=True).count() == 1
    page.get_by_role("checkbox").first.check()
    page.get_by_role("gridcell", name="seed", exact=True).wait_for(state="detached", timeout=10000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)

    with page.expect_download(timeout=30000) as html_download:
        page.get_by_role("button", name="Save comparison (HTML)").click()
    saved_html = Path(html_download.value.path()).read_text()
    assert "cdn.bokeh.org" not in saved_html and "Bokeh.embed" in saved_html

    with page.expect_download(timeout=90000) as png_download:
        page.get_by_role("button", name="Save comparison (PNG)").click()
    png = Path(png_download.value.path()).read_bytes()
    (SCREENSHOTS / "compare-saved.png").write_bytes(png)
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and pixel_spread(png) > 10  # drawn charts, not a blank page
    assert page.locator("img[src=x]").count() == 0
    assert errors == []


OVERLAY_ALPHA = """(title) => {
  const fig = [...Bokeh.documents[0].all_models].find(m => m.type === 'Figure' && m.title && m.title.text === title);
  const lines = fig.renderers.find(r => r.name === 'curves').data_source.data;
  return lines.ys.every(y => y.length > 0) ? [...lines.alpha] : null;
}"""


def test_a_legend_click_fades_one_run_of_an_overlay(
    seeded: tuple[Api, list[str]], serve: Callable[[Callable[[], Any]], str], browser: Any
) -> None:
    api, ids = seeded
    page, errors = open_page(browser, serve(lambda: CompareView(api, ids)))
    page.wait_for_function(f"() => ({OVERLAY_ALPHA})('loss') !== null", timeout=30000)  # the curves were read
    assert page.evaluate(OVERLAY_ALPHA, "loss") == [1.0, 1.0, 1.0]
    wide = page.locator(".bk-item", has_text="wide")  # the legend is DOM in Bokeh 3.9: an item per run
    assert wide.count() == 2  # its entry in both overlays (accuracy, loss)
    wide.last.click()
    page.wait_for_function(f"() => ({OVERLAY_ALPHA})('loss')[2] < 0.5", timeout=10000)
    assert page.evaluate(OVERLAY_ALPHA, "loss") == [1.0, 1.0, 0.1]  # only that run, only in that chart
    assert page.evaluate(OVERLAY_ALPHA, "accuracy") == [1.0, 1.0, 1.0]
    wide.last.click()
    page.wait_for_function(f"() => ({OVERLAY_ALPHA})('loss')[2] > 0.5", timeout=10000)
    page.get_by_text("Params vs final metric").wait_for()  # the deferred section came: the server is done sending
    assert errors == []


def test_render_png_draws_the_saved_page(seeded: tuple[Api, list[str]]) -> None:
    png = render_png(CompareView(*seeded).comparison_html())
    image = Image.open(io.BytesIO(png))
    assert image.width == 1400 and image.height > 900 and pixel_spread(png) > 10


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))


AXIS_POINT = """([title, x, y]) => {
  const doc = Bokeh.documents[0];
  const fig = [...doc.all_models].find(m => m.type === 'Figure' && m.title && String(m.title.text).startsWith(title));
  const view = Bokeh.index.find_one(fig);
  const box = view.canvas_view.el.getBoundingClientRect();
  return [box.left + view.frame.x_scale.compute(x), box.top + view.frame.y_scale.compute(y)];
}"""


def test_brushing_an_axis_in_chromium_selects_runs(
    seeded: tuple[Api, list[str]], serve: Callable[[Callable[[], Any]], str], browser: Any
) -> None:
    api, ids = seeded
    views: list[CompareView] = []

    def make() -> CompareView:
        views.append(CompareView(api, ids))
        return views[-1]

    page, errors = open_page(browser, serve(make))
    page.get_by_text("Params vs final metric").scroll_into_view_if_needed()
    page.get_by_text("Drag a box over an axis").scroll_into_view_if_needed()
    page.mouse.wheel(0, 400)
    page.wait_for_function("() => window.scrollY > 0")
    n_axes = len(views[0].data.numeric_params()[:8]) + 1  # the params, then the final metric (accuracy)
    accuracy_axis = n_axes - 1
    top = page.evaluate(AXIS_POINT, ["Params vs", accuracy_axis - 0.15, 1.08])
    bottom = page.evaluate(AXIS_POINT, ["Params vs", accuracy_axis + 0.15, 0.3])
    page.mouse.move(*top)
    page.mouse.down()
    page.mouse.move(*bottom, steps=8)
    page.mouse.up()
    # baseline (best accuracy, at 1.0) and the second run (0.52 of the range) are in the box; "wide" (0.0) is not
    page.wait_for_function(
        """() => Bokeh.documents[0] && [...Bokeh.documents[0].all_models].some(
             m => m.type === 'ColumnDataSource' && m.data.xs && m.selected.indices.join() === '0,1')""",
        timeout=10000,
    )
    deadline = time.monotonic() + 10
    while views[0].selected != ["r1", "r2"] and time.monotonic() < deadline:
        page.wait_for_timeout(50)  # the selection travels back to the server over the websocket
    assert views[0].selected == ["r1", "r2"]
    assert errors == []


def test_a_failed_png_export_is_reported_in_the_page(
    seeded: tuple[Api, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_browser(page_html: str) -> bytes:
        raise FileNotFoundError("chromium: <not found>")

    monkeypatch.setattr("aquarium.ui.views.compare.render_png", no_browser)
    view = CompareView(*seeded)
    assert asyncio.run(view._png_file()) is None
    assert "PNG export failed: chromium: &lt;not found&gt;" in view.status.object


def test_no_playwright_disables_the_png_button(seeded: tuple[Api, list[str]], monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "playwright" else real(name, *a))
    view = CompareView(*seeded)
    assert view.save_png.disabled and "pip install playwright" in view.save_png.description
    assert not view.save_html.disabled


def test_runs_with_different_metrics_and_no_params(tmp_path: Path) -> None:
    with Store(tmp_path / "data") as store:
        store.ingest(
            [
                make_batch(0, [0, 1], [0.5, 0.4], run="a", key="loss", params={"lr": 0.1}),
                make_batch(0, [0, 1, 2], [0.1, 0.2, 0.3], run="b", key="accuracy"),
            ]
        )
    with Api(tmp_path / "data") as api:
        view = CompareView(api, ["a", "b"])
        perf = view._perf_table.value.set_index("metric")
        assert perf.loc["loss", "run1"] == "–" and perf.loc["accuracy", "run0"] == "–"
        loss = [c[0] for c in view._curves.object.children][1]
        assert loss.select_one({"name": "curves"}).data_source.data["label"] == ["a"]  # b never logged a loss
        assert list(view._params_table.value["run1"]) == [""]  # b has no lr: an empty cell, and a difference
        assert view.comparison_html()


def test_an_unknown_run_is_a_clear_error(seeded: tuple[Api, list[str]]) -> None:
    from aquarium.agent.errors import RunNotFoundError

    with pytest.raises(RunNotFoundError, match="nope"):
        CompareView(seeded[0], ["r1", "nope"])
