"""The experiments view: every run, one page at a time, from ``Api.search``.

Paging, sorting and filtering happen in the store: the table holds only the page on screen, so
10,000 runs cost what 25 do. The filter panel (status, a name/tag search, a date range) and the
query box (the query language of ``collector/query.py``) combine into one filter; a query that
does not parse is shown with its position and nothing else changes. Sorting a column re-asks the
store in that order. Rows stay current without a reload: the page is re-read when the live hub
announces a run change, and every ``REFRESH_SECONDS`` for the latest metrics.
"""

from __future__ import annotations

import html
import logging
import math
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

import pandas as pd
import panel as pn
import param

from aquarium.agent.statuses import COMPLETED, FAILED, INTERRUPTED, RUNNING, TERMINATED
from aquarium.collector import Api, QueryError, parse_filter

from ..live import LiveHub, Watch
from ..theme import badge, html_pane
from .format import duration, when

__all__ = ["PAGE_SIZE", "ExperimentsView", "quote_literal"]

log = logging.getLogger("aquarium.ui.views.experiments")

PAGE_SIZE = 25
REFRESH_SECONDS = 2.0
STATUSES = [RUNNING, COMPLETED, FAILED, "crashed", "killed", INTERRUPTED, TERMINATED]
DEFAULT_SORT = "-created"
# table column -> the query-language field it sorts by
SORT_FIELDS = {
    "name": "name",
    "experiment": "experiment",
    "status": "status",
    "started": "started",
    "duration": "duration",
}
BASE_COLUMNS = ["id", "name", "experiment", "status", "started", "duration", "ranks"]


def quote_literal(text: str) -> str:
    """``text`` as a query-language string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


class ExperimentsView(pn.viewable.Viewer):
    """The runs table with its filter panel, query box, pager and "Compare" button."""

    page = param.Integer(default=0, bounds=(0, None))
    total = param.Integer(default=0)
    sort = param.String(default=DEFAULT_SORT)
    selected = param.List(default=[], item_type=str, doc="Run ids ticked for comparison, across pages.")

    def __init__(
        self,
        api: Api,
        hub: LiveHub,
        open_run: Callable[[str], None],
        compare: Callable[[list[str]], None],
        notify: Callable[[str], None] | None = None,
        **params: Any,
    ) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]
        self.api, self.hub = api, hub
        self._open_run, self._compare = open_run, compare
        self._notify = notify or (lambda message: None)
        self._doc = pn.state.curdoc
        self._ids: list[str] = []  # the page's run ids, in row order
        self._stale = False
        self._metrics_chosen = False
        self._choosing = False  # the view itself is setting the metric columns: no reload
        self.query = pn.widgets.TextInput(
            label="Query",
            placeholder='e.g. metrics.val_loss.min < 0.3 and params.lr > 1e-4 and "prod" in tags',
            sizing_mode="stretch_width",
        )
        self.search = pn.widgets.TextInput(label="Name or tag", placeholder="search", width=200)
        self.statuses = pn.widgets.MultiChoice(label="Status", options=STATUSES, value=[], width=260)
        self.since = pn.widgets.DatePicker(label="Created from", value=None, width=150)
        self.until = pn.widgets.DatePicker(label="Created until", value=None, width=150)
        self.metrics = pn.widgets.MultiChoice(label="Metric columns", options=[], value=[], width=300)
        self.error = html_pane("", sizing_mode="stretch_width", visible=False)
        self.compare_button = pn.widgets.Button(
            label="Compare selected", color="primary", disabled=True, align="end", width=170
        )
        self.clear_button = pn.widgets.Button(label="Clear filters", align="end", width=120)
        self.first = pn.widgets.Button(label="«", width=45)
        self.previous = pn.widgets.Button(label="‹", width=45)
        self.next = pn.widgets.Button(label="›", width=45)
        self.last = pn.widgets.Button(label="»", width=45)
        self.pager = html_pane("", align="center")
        self.table = pn.widgets.Tabulator(
            pd.DataFrame(columns=BASE_COLUMNS),
            show_index=False,
            selectable="checkbox",
            disabled=True,
            hidden_columns=["id"],
            formatters={"status": {"type": "html"}},
            header_align="left",
            sizing_mode="stretch_width",
            theme="midnight",
            layout="fit_data_stretch",
        )
        self.table.on_click(self._clicked)
        self.table.param.watch(self._selection_changed, "selection")
        self.table.param.watch(self._sorted, "sorters")
        for widget in (self.query, self.search, self.statuses, self.since, self.until):
            widget.param.watch(self._filters_changed, "value")
        self.metrics.param.watch(self._metrics_changed, "value")
        self.compare_button.on_click(lambda _: self._compare(list(self.selected)))
        self.clear_button.on_click(lambda _: self._clear())
        self.first.on_click(lambda _: self._go(0))
        self.previous.on_click(lambda _: self._go(self.page - 1))
        self.next.on_click(lambda _: self._go(self.page + 1))
        self.last.on_click(lambda _: self._go(self.pages - 1))
        self._layout = pn.Column(
            pn.Row(self.query, sizing_mode="stretch_width"),
            self.error,
            pn.Row(
                self.statuses,
                self.search,
                self.since,
                self.until,
                self.metrics,
                self.clear_button,
                self.compare_button,
                sizing_mode="stretch_width",
                styles={"flex-wrap": "wrap"},
            ),
            self.table,
            pn.Row(self.first, self.previous, self.pager, self.next, self.last),
            sizing_mode="stretch_width",
        )
        self._watch: Watch = hub.watch_runs(self._run_changed)
        self.reload()

    def __panel__(self) -> pn.Column:
        return self._layout

    def close(self) -> None:
        self._watch.close()

    # -- the filter ------------------------------------------------------------------------------
    def filter_text(self) -> str | None:
        """The filter the panel and the query box say, as one query (raises QueryError for the box)."""
        parts: list[str] = []
        query = (self.query.value or "").strip()
        if query:
            parse_filter(query)  # its errors point into what the user typed, not into the combination
            parts.append(f"({query})")
        if self.statuses.value:
            parts.append("(" + " or ".join(f"status == {quote_literal(s)}" for s in self.statuses.value) + ")")
        needle = (self.search.value or "").strip()
        if needle:
            literal = quote_literal(needle)
            parts.append(f"(name contains {literal} or id contains {literal} or {literal} in tags)")
        if self.since.value:
            parts.append(f"created >= {_epoch(self.since.value)}")
        if self.until.value:
            parts.append(f"created < {_epoch(self.until.value + timedelta(days=1))}")
        return " and ".join(parts) or None

    def _filters_changed(self, *_: object) -> None:
        self.page = 0
        self.reload()

    def _clear(self) -> None:
        with param.parameterized.batch_call_watchers(self):
            self.query.value = ""
            self.search.value = ""
            self.statuses.value = []
            self.since.value = None
            self.until.value = None
        self.reload()

    # -- reading ----------------------------------------------------------------------------------
    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / PAGE_SIZE))

    def reload(self) -> None:
        """Read the page on screen again (filters, sort, page as they are now)."""
        self._stale = False
        try:
            text = self.filter_text()
            page = self.api.search(text, self.sort, PAGE_SIZE, self.page * PAGE_SIZE)
        except QueryError as e:
            self._show_error(e)
            return
        self.error.visible = False
        if page.total and self.page * PAGE_SIZE >= page.total:  # the page emptied (runs deleted, filter)
            self.page = self.pages - 1 if page.total else 0
            page = self.api.search(text, self.sort, PAGE_SIZE, self.page * PAGE_SIZE)
        self.total = page.total
        self._offer_metrics(page.runs)
        frame = self.frame(page.runs)
        self._ids = list(frame["id"])
        if not frame.equals(self.table.value):
            self.table.value = frame
        self.table.selection = [i for i, run_id in enumerate(self._ids) if run_id in self.selected]
        self._show_pager()

    def _show_error(self, error: QueryError) -> None:
        pointer = " " * error.position + "^"
        self.error.object = (
            f'<div class="aq-error" id="aq-query-error"><b>Query error</b> at character {error.position + 1}: '
            f"{html.escape(error.reason)}<pre>{html.escape(error.query)}\n{pointer}</pre></div>"
        )
        self.error.visible = True
        self._notify(f"query error at character {error.position + 1}: {error.reason}")

    def _offer_metrics(self, runs: list[dict[str, Any]]) -> None:
        keys = sorted({key for run in runs for key in run.get("metrics", {})} | set(self.metrics.value))
        if keys != self.metrics.options:
            self.metrics.options = keys
        if not self.metrics.value and keys and not self._metrics_chosen:
            self._metrics_chosen = True  # the first page with metrics picks the default columns
            preferred = [k for k in ("loss", "val_loss", "accuracy", "val_accuracy") if k in keys]
            self._choosing = True
            try:
                self.metrics.value = (preferred or keys)[:3]
            finally:
                self._choosing = False

    def _metrics_changed(self, *_: object) -> None:
        if not self._choosing:  # the user chose: show those columns
            self.reload()

    def frame(self, runs: list[dict[str, Any]]) -> pd.DataFrame:
        """The page as the table shows it: text cells (names are data: Tabulator escapes plain
        text), the status as a badge built from escaped text."""
        rows = []
        for run in runs:
            row: dict[str, Any] = {
                "id": run["id"],
                "name": str(run.get("name") or run["id"]),
                "experiment": str(run.get("experiment") or ""),
                "status": badge(str(run.get("status", ""))),
                "started": when(run.get("started_at") or run.get("created_at")),
                "duration": duration(_duration(run)),
                "ranks": int(run.get("ranks") or 0),
            }
            for key in self.metrics.value:
                last = run.get("metrics", {}).get(key, {}).get("last")
                row[key] = _number(last)
            row["tags"] = ", ".join(
                k if v in ("", None) else f"{k}={v}" for k, v in sorted(run.get("tags", {}).items())
            )
            rows.append(row)
        return pd.DataFrame(rows, columns=[*BASE_COLUMNS, *self.metrics.value, "tags"])

    def _show_pager(self) -> None:
        first = self.page * PAGE_SIZE + 1 if self.total else 0
        last = min(self.total, (self.page + 1) * PAGE_SIZE)
        self.pager.object = (
            f'<span id="aq-pager">page {self.page + 1} of {self.pages} · runs {first}–{last} of {self.total:,}</span>'
        )
        self.first.disabled = self.previous.disabled = self.page == 0
        self.next.disabled = self.last.disabled = self.page >= self.pages - 1

    def _go(self, page: int) -> None:
        self.page = min(max(page, 0), self.pages - 1)
        self.reload()

    # -- table events -----------------------------------------------------------------------------
    def _sorted(self, event: param.parameterized.Event) -> None:
        specs = []
        for sorter in event.new or []:
            column = str(sorter.get("field", ""))
            field = SORT_FIELDS.get(column) or (f"metrics.{column}.last" if column in self.metrics.value else None)
            if field is None:
                continue
            specs.append(("-" if sorter.get("dir") == "desc" else "") + field)
        sort = ", ".join(specs) or DEFAULT_SORT
        if sort != self.sort:
            self.sort = sort
            self.page = 0
            self.reload()

    def _clicked(self, event: Any) -> None:
        row = getattr(event, "row", None)
        if isinstance(row, int) and 0 <= row < len(self._ids) and event.column not in (None, "_index", ""):
            self._open_run(self._ids[row])

    def _selection_changed(self, event: param.parameterized.Event) -> None:
        on_page = {self._ids[i] for i in event.new or [] if i < len(self._ids)}
        kept = [run_id for run_id in self.selected if run_id not in self._ids]
        self.selected = kept + [run_id for run_id in self._ids if run_id in on_page]
        self.compare_button.disabled = len(self.selected) < 2
        self.compare_button.label = f"Compare selected ({len(self.selected)})" if self.selected else "Compare selected"

    # -- live -------------------------------------------------------------------------------------
    def _run_changed(self, run_id: str, change: dict[str, Any]) -> None:
        """On the hub's thread: a run appeared or changed; re-read the page on the session's thread."""
        if self._stale:
            return
        self._stale = True
        if self._doc is not None:
            self._doc.add_next_tick_callback(partial(self._reload_if_stale))

    def _reload_if_stale(self) -> None:
        if self._stale:
            self.reload()

    def tick(self) -> None:
        """The periodic refresh (latest metrics, durations of running runs)."""
        self.reload()


def _epoch(day: date) -> float:
    return time.mktime(datetime(day.year, day.month, day.day).timetuple())


def _duration(run: dict[str, Any]) -> float | None:
    value = run.get("duration")
    if value is not None:
        return float(value)
    started = run.get("started_at")
    return None if started is None else time.time() - float(started)


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None
