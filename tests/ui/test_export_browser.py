"""The Export tab in Chromium: tick runs in the list, export them to JSON from the tab's card, and
watch a real `aquarium worker` take the job to 100% and the file hold the run's points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import Served, open_page
from ledger import wait_until

from aquarium.collector import Api

pytestmark = pytest.mark.browser

ROWS = ".tabulator-row"


@pytest.fixture
def worker(served: Served) -> Iterator[subprocess.Popen[bytes]]:
    aquarium = str(Path(sys.executable).with_name("aquarium"))
    argv = [aquarium, "worker", "--redis-url", served.seeded.redis_url, "--no-fork"]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    yield proc
    proc.terminate()
    proc.wait(timeout=30)


def test_an_export_from_the_ui_reaches_100_percent_and_the_target_holds_the_data(
    page: Any, served: Served, worker: subprocess.Popen[bytes], tmp_path: Path, screenshot: Any
) -> None:
    open_page(page, served.url)
    page.locator("#aq-pager", has_text=f"of {served.seeded.total}").wait_for(timeout=30_000)
    names = page.locator(f'{ROWS} .tabulator-cell[tabulator-field="name"]')
    picked = [names.nth(1).inner_text(), names.nth(2).inner_text()]
    boxes = page.locator(f"{ROWS} input[type=checkbox]")
    boxes.nth(1).click()
    boxes.nth(2).click()
    page.get_by_role("button", name="Compare selected (2)").wait_for(timeout=30_000)
    page.locator(".bk-tab", has_text="Export").click()
    page.locator(".aq-selection", has_text="2 runs selected").wait_for(timeout=30_000)
    card = page.locator(".aq-export-card", has_text="JSON")
    out = tmp_path / "exports"
    directory = card.get_by_role("textbox")
    directory.fill(str(out))
    directory.press("Enter")
    card.get_by_role("button", name="Export to JSON").click()
    done = page.locator(".aq-job-state", has_text="finished")
    wait_until(lambda: done.count() == 2, "both jobs finished in the page", timeout=90)
    bars = page.locator(".aq-job progress")
    assert [bars.nth(i).get_attribute("value") for i in range(2)] == ["100", "100"]
    assert page.locator(".aq-report").count() == 2  # the kept/not-kept report of each job
    screenshot(page, "app-export")
    files = sorted(out.glob("*.json"))
    assert len(files) == 2
    documents = [json.loads(f.read_text()) for f in files]
    assert sorted(d["run"]["name"] for d in documents) == sorted(picked)
    with Api(served.seeded.data_dir) as api:
        for document in documents:
            run_id = document["run"]["id"]
            stored = {
                (k, r): len(api.series(run_id, k, rank=r).steps)
                for k in api.keys(run_id)
                for r in api.run(run_id)["ranks"]
            }
            assert {(s["key"], s["rank"]): len(s["points"]) for s in document["series"]} == stored  # every point
