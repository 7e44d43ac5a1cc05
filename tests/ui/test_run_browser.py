"""The run view in Chromium: curves that grow while an agent logs, per rank vs the mean with its
band, zoom that re-reads the visible range at full resolution, URLs that survive a reload."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import DDP_STEPS, Served, open_page, playwright_api, source_data, source_length, wait_for_source
from ledger import wait_until

import aquarium.agent as aq
from aquarium.agent.errors import RunNotFoundError
from aquarium.collector import Api
from aquarium.ui.live_curves import DEFAULT_WIDTH, source_name

pytestmark = pytest.mark.browser


def test_clicking_a_run_shows_its_curves_and_the_url_names_it(page: Any, served: Served, screenshot: Any) -> None:
    open_page(page, served.url)
    page.locator('.tabulator-cell[tabulator-field="name"]', has_text="sweep-20").first.click()
    wait_for_source(page, source_name("sweep-20", "loss", "mean"), at_least=50)
    page.wait_for_function("() => location.search == '?run=sweep-20'")  # the URL names the run
    page.locator("#aq-run-name", has_text="sweep-20").wait_for()
    assert source_length(page, source_name("sweep-20", "accuracy", "mean")) == 50
    screenshot(page, "run")


def test_a_curve_grows_while_an_agent_logs(page: Any, served: Served, screenshot: Any) -> None:
    seeded = served.seeded
    run = aq.init(
        experiment="live",
        run_id="live-run",
        redis_url=seeded.redis_url,
        data_dir=seeded.data_dir / "agent",
        commit_wait=20.0,
        finish_timeout=30.0,
    )
    try:
        for step in range(10):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        assert run.flush()
        with Api(seeded.data_dir) as api:

            def stored() -> bool:
                try:
                    return bool(api.run("live-run")["metrics"].get("loss", {}).get("count") == 10)
                except RunNotFoundError:
                    return False

            wait_until(stored, "the first 10 points are stored")
        open_page(page, served.url + "?run=live-run")
        name = source_name("live-run", "loss", "mean")
        wait_for_source(page, name, at_least=10)
        assert source_length(page, name) == 10
        for step in range(10, 40):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
            if step % 10 == 9:
                run.flush()
                wait_for_source(page, name, at_least=step + 1)  # each point reaches the browser
        steps = source_data(page, name)
        assert steps is not None and steps["step"] == list(range(40))  # every step once, in order
        screenshot(page, "run-live")
    finally:
        run.finish(timeout=30.0)


def test_per_rank_lines_and_the_mean_with_its_min_max_band(page: Any, served: Served, screenshot: Any) -> None:
    open_page(page, served.url + "?run=ddp-run")
    mean = source_name("ddp-run", "loss", "mean")
    wait_for_source(page, mean)
    data = source_data(page, mean)
    assert data is not None
    assert 0 < len(data["step"]) <= DEFAULT_WIDTH  # downsampled on the server: no more points than pixels
    # rank 1 logs 0.1 more than rank 0: the band spans them and the line is their mean
    assert all(abs((hi - lo) - 0.1) < 1e-9 for lo, hi in zip(data["lo"], data["hi"]))
    assert all(abs(v - (lo + hi) / 2) < 1e-9 for v, lo, hi in zip(data["value"], data["lo"], data["hi"]))
    page.get_by_role("button", name="Per rank").click()
    rank0, rank1 = source_name("ddp-run", "loss", "rank0"), source_name("ddp-run", "loss", "rank1")
    wait_for_source(page, rank0)
    wait_for_source(page, rank1)
    zero, one = source_data(page, rank0), source_data(page, rank1)
    assert zero is not None and one is not None
    assert zero["step"][0] == 0 and one["step"][0] == 0
    assert abs(one["value"][0] - zero["value"][0] - 0.1) < 1e-9
    screenshot(page, "run-per-rank")


def test_zoom_rereads_the_visible_steps_at_full_resolution(page: Any, served: Served) -> None:
    open_page(page, served.url + "?run=ddp-run")
    mean = source_name("ddp-run", "loss", "mean")
    wait_for_source(page, mean)
    before = source_data(page, mean)
    assert before is not None and before["step"][-1] == DDP_STEPS - 1 and len(before["step"]) < DDP_STEPS
    canvas = page.locator(".bk-Canvas").nth(1)  # the charts come in key order: accuracy, loss
    canvas.wait_for()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    zoomed_in = """(name) => {
        for (const doc of window.Bokeh.documents) {
            const model = doc.get_model_by_name(name);
            if (!model) continue;
            const steps = model.data.step, n = steps.length;
            return n > 1 && steps[n - 1] - steps[0] < HALF && n == steps[n - 1] - steps[0] + 1;
        }
        return false;
    }""".replace("HALF", str(DDP_STEPS // 2))
    for _ in range(10):  # each notch zooms in a little; the server answers the range it settles on
        page.mouse.wheel(0, -300)
        try:
            page.wait_for_function(zoomed_in, arg=mean, timeout=3_000)
            break
        except playwright_api.TimeoutError:
            continue
    else:
        steps = (source_data(page, mean) or {}).get("step", [])
        pytest.fail(f"wheel zoom never re-read a narrower range at full resolution: {len(steps)} points")
    zoomed = source_data(page, mean)
    assert zoomed is not None and len(zoomed["step"]) <= DEFAULT_WIDTH
    page.get_by_role("button", name="Refresh").click()  # back to the whole run
    page.wait_for_function(
        "(name) => { for (const d of window.Bokeh.documents) { const m = d.get_model_by_name(name);"
        " if (m && m.data.step.length && m.data.step[0] == 0) return true; } return false; }",
        arg=mean,
    )


def test_a_reload_keeps_the_run_and_an_unknown_run_says_so(page: Any, served: Served, screenshot: Any) -> None:
    open_page(page, served.url + "?run=sweep-07")
    wait_for_source(page, source_name("sweep-07", "loss", "mean"))
    page.reload()
    page.wait_for_function("() => window.Bokeh && window.Bokeh.documents.length > 0")
    wait_for_source(page, source_name("sweep-07", "loss", "mean"))
    assert "run=sweep-07" in page.url
    page.locator("#aq-run-name", has_text="sweep-07").wait_for()
    page.locator(".bk-tab", has_text="Experiments").click()
    page.locator("#aq-pager").wait_for()
    page.wait_for_function("() => location.search == ''")  # the list's URL is plain /
    open_page(page, served.url + "?run=no-such-run")
    page.locator(".aq-error", has_text="No run").wait_for()
