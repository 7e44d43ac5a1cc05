"""The experiments list in Chromium: the runs, the query box, sorting, paging, names as text."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import SWEEP, XSS_NAME, Served, open_page
from ledger import wait_until

pytestmark = pytest.mark.browser

ROWS = ".tabulator-row"


def names(page: Any) -> list[str]:
    return [str(t) for t in page.locator(f'{ROWS} .tabulator-cell[tabulator-field="name"]').all_inner_texts()]


def pager(page: Any) -> str:
    return str(page.locator("#aq-pager").inner_text())


def wait_pager(page: Any, text: str) -> None:
    page.locator("#aq-pager", has_text=text).wait_for(timeout=30_000)


def query(page: Any, text: str) -> None:
    box = page.get_by_placeholder("e.g. metrics.val_loss.min")
    box.fill(text)
    box.press("Enter")


def test_the_list_shows_the_runs_newest_first_one_page_at_a_time(page: Any, served: Served, screenshot: Any) -> None:
    open_page(page, served.url)
    total = served.seeded.total
    wait_pager(page, f"of {total}")
    assert "page 1 of 2" in pager(page)
    shown = names(page)
    assert len(shown) == 25  # only a page reaches the browser
    assert shown[0] == XSS_NAME  # the last run logged comes first
    assert page.locator(f'{ROWS} .tabulator-cell[tabulator-field="status"]').first.inner_text() == "completed"
    screenshot(page, "experiments")


def test_the_query_box_filters_and_shows_a_syntax_error_at_its_position(
    page: Any, served: Served, screenshot: Any
) -> None:
    open_page(page, served.url)
    wait_pager(page, f"of {served.seeded.total}")
    query(page, "params.lr > 0.2")  # sweep-20 .. sweep-29 have lr 0.21 .. 0.30
    wait_pager(page, "of 10")
    assert sorted(names(page)) == [f"sweep-{i:02d}" for i in range(20, SWEEP)]
    query(page, "params.lr > and name")
    error = page.locator("#aq-query-error")
    error.wait_for(timeout=30_000)
    assert "at character 13" in error.inner_text()
    assert "^" in error.inner_text()
    screenshot(page, "experiments-query-error")
    assert "of 10" in pager(page)  # the bad query changed nothing
    query(page, "")
    wait_pager(page, f"of {served.seeded.total}")
    assert not error.is_visible()


def test_sorting_a_column_asks_the_store_and_paging_moves_through_every_run(page: Any, served: Served) -> None:
    open_page(page, served.url)
    wait_pager(page, f"of {served.seeded.total}")
    everything = sorted(["ddp-run", XSS_NAME, *served.seeded.sweep])
    header = page.locator('.tabulator-col[tabulator-field="name"] .tabulator-col-title')
    header.click()
    wait_until(lambda: names(page) == everything[:25], lambda: f"page 1 sorted by name, shows {names(page)}")
    page.get_by_role("button", name="›", exact=True).click()
    wait_pager(page, "page 2 of 2")
    wait_until(lambda: names(page) == everything[25:], lambda: f"page 2 sorted by name, shows {names(page)}")
    header.click()  # descending, from the first page again
    wait_pager(page, "page 1 of 2")
    descending = everything[::-1]
    wait_until(lambda: names(page) == descending[:25], lambda: f"page 1 sorted descending, shows {names(page)}")


def test_a_name_holding_html_is_shown_as_text(page: Any, served: Served, screenshot: Any) -> None:
    open_page(page, served.url)
    wait_pager(page, f"of {served.seeded.total}")
    cell = page.locator(f'{ROWS} .tabulator-cell[tabulator-field="name"]').first
    assert cell.inner_text() == XSS_NAME
    assert cell.locator("img").count() == 0
    assert page.locator(".tabulator img").count() == 0
    cell.click()
    title = page.locator("#aq-run-name")
    title.wait_for(timeout=30_000)
    assert title.inner_text() == XSS_NAME
    assert page.locator("img[src=x]").count() == 0
    screenshot(page, "run-html-name")


def test_ticked_runs_open_in_the_compare_view_with_a_shareable_url(page: Any, served: Served, screenshot: Any) -> None:
    open_page(page, served.url)
    wait_pager(page, f"of {served.seeded.total}")
    boxes = page.locator(f"{ROWS} input[type=checkbox]")
    ticked = names(page)[2:4]  # the run ids are their names here
    boxes.nth(2).click()
    boxes.nth(3).click()
    button = page.get_by_role("button", name="Compare selected (2)")
    button.wait_for(timeout=30_000)
    button.click()
    page.wait_for_function("() => location.search.startsWith('?compare=')")  # the URL names the comparison
    ids = page.url.split("compare=")[1].split("&")[0].replace("%2C", ",").split(",")
    assert sorted(ids) == sorted(ticked)
    page.locator(".bk-tab.bk-active", has_text="Compare").wait_for(timeout=30_000)
    page.wait_for_function("() => window.Bokeh.documents.length > 0")
    page.locator("canvas").first.wait_for(state="attached", timeout=30_000)
    screenshot(page, "app-compare")
    page.reload()
    page.locator(".bk-tab.bk-active", has_text="Compare").wait_for(timeout=30_000)
    assert "compare=" in page.url
