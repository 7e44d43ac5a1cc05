"""The run view: what a run is (params, tags, status history, ranks and incarnations, artifacts)
and one live chart per metric.

Only one page of charts exists at a time (``CHARTS_PER_PAGE``, filterable by name), so a run with
500 metrics renders and streams a handful of figures, not 500. Live items come from the process's
``LiveHub`` on its thread and are handed to this session's document with
``add_next_tick_callback``; everything touching Bokeh models runs there.
"""

from __future__ import annotations

import html
import logging
import math
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import panel as pn
import param

from aquarium.agent.errors import RunNotFoundError
from aquarium.agent.statuses import TERMINAL_STATUSES
from aquarium.collector import Api
from aquarium.collector.live import Points, RunChange

from ..artifacts import artifact_url, is_inline
from ..live import LiveHub, LiveItem, Resync, Watch
from ..live_curves import MODES, CurveOptions, MetricChart
from ..smoothing import SMOOTHINGS, Smoothing
from ..theme import badge, html_pane
from .format import duration, when

__all__ = ["CHARTS_PER_PAGE", "RunView"]

log = logging.getLogger("aquarium.ui.views.run")

CHARTS_PER_PAGE = 6


class RunView(pn.viewable.Viewer):
    """One run: its details and its live charts (``run_id`` unknown: says so)."""

    run_id = param.String(default="")
    page = param.Integer(default=0, bounds=(0, None))

    def __init__(
        self, api: Api, hub: LiveHub, run_id: str, notify: Callable[[str], None] | None = None, **params: Any
    ) -> None:
        super().__init__(run_id=run_id, **params)  # type: ignore[no-untyped-call]
        self.api, self.hub = api, hub
        self._notify = notify or (lambda message: None)
        self._doc = pn.state.curdoc
        self._watch: Watch | None = None
        self.charts: list[MetricChart] = []
        self.keys: list[str] = []
        self.run: dict[str, Any] | None = None
        self.mode = pn.widgets.RadioButtonGroup(
            label="Ranks", options=MODES, value="mean", color="primary", variant="outline"
        )
        self.smoothing = pn.widgets.Select(label="Smoothing", options=SMOOTHINGS, value="none", width=170)
        self.window = pn.widgets.IntSlider(label="MA window", start=1, end=200, value=10, width=160)
        self.weight = pn.widgets.FloatSlider(label="EMA weight", start=0.0, end=0.99, step=0.01, value=0.6, width=160)
        self.log_y = pn.widgets.Checkbox(label="Log scale", value=False, align="center")
        self.metric_filter = pn.widgets.TextInput(label="Metrics", placeholder="filter metrics by name", width=220)
        self.previous = pn.widgets.Button(label="‹ Previous", width=100, align="end")
        self.next = pn.widgets.Button(label="Next ›", width=100, align="end")
        self.page_label = html_pane("", align="center")
        self.summary = html_pane("", sizing_mode="stretch_width")
        self.details = html_pane("", sizing_mode="stretch_width")
        self.grid = pn.GridBox(ncols=2, sizing_mode="stretch_width")
        self.mode.param.watch(self._rebuild, "value")
        self.log_y.param.watch(self._rebuild, "value")
        self.metric_filter.param.watch(self._refilter, "value")
        for widget in (self.smoothing, self.window, self.weight):
            widget.param.watch(self._resmooth, "value")
        self.previous.on_click(lambda _: self._turn(-1))
        self.next.on_click(lambda _: self._turn(+1))
        self._layout = pn.Column(
            self.summary,
            self.details,
            pn.Row(
                self.mode,
                self.smoothing,
                self.window,
                self.weight,
                self.log_y,
                self.metric_filter,
                self.previous,
                self.page_label,
                self.next,
                sizing_mode="stretch_width",
                styles={"flex-wrap": "wrap"},
            ),
            self.grid,
            sizing_mode="stretch_width",
        )
        self.refresh()

    def __panel__(self) -> pn.Column:
        return self._layout

    # -- reading ----------------------------------------------------------------------------------
    def refresh(self) -> None:
        """Read the run again: its details, and the charts of the whole run (the refresh button,
        a new run id). The charts of the same run and metrics are kept and re-read."""
        shown = [c.key for c in self.charts if c.run_id == self.run_id]
        self.close()
        if not self.run_id:
            self.run = None
            self.summary.object = '<div class="aq-card">Open a run from the Experiments tab.</div>'
            self.details.object = ""
            self._set_charts([])
            return
        try:
            self.run = self.api.run(self.run_id)
            self.keys = self.api.keys(self.run_id)
        except RunNotFoundError:
            self.run = None
            self.summary.object = (
                f'<div class="aq-card aq-error">No run <code>{html.escape(self.run_id)}</code> in this store.</div>'
            )
            self.details.object = ""
            self._set_charts([])
            return
        self._show_run()
        self._watch = self.hub.watch(self.run_id, self._from_hub)
        if shown and shown == self._page_keys():
            for chart in self.charts:
                chart.view = (None, None)
                chart.load()
        else:
            self._build_charts()

    def close(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _show_run(self) -> None:
        assert self.run is not None
        self.summary.object = summary_html(self.run)
        self.details.object = details_html(self.run, artifacts_of(self.api, self.run_id))

    # -- charts -----------------------------------------------------------------------------------
    @property
    def visible_keys(self) -> list[str]:
        needle = (self.metric_filter.value or "").strip().lower()
        return [k for k in self.keys if needle in k.lower()]

    def _options(self) -> CurveOptions:
        return CurveOptions(mode=self.mode.value, smoothing=self._smoothing(), log_y=bool(self.log_y.value))

    def _smoothing(self) -> Smoothing:
        return Smoothing(
            self.smoothing.value, window=int(self.window.value or 1), weight=float(self.weight.value or 0.0)
        )

    def _page_keys(self) -> list[str]:
        keys = self.visible_keys
        page = min(self.page, max(0, math.ceil(len(keys) / CHARTS_PER_PAGE) - 1))
        return keys[page * CHARTS_PER_PAGE : (page + 1) * CHARTS_PER_PAGE]

    def _build_charts(self) -> None:
        keys = self.visible_keys
        pages = max(1, math.ceil(len(keys) / CHARTS_PER_PAGE))
        self.page = min(self.page, pages - 1)
        shown = self._page_keys()
        ranks = [int(r) for r in (self.run or {}).get("ranks", [])]
        options = self._options()
        charts = [MetricChart(self.api, self.run_id, key, ranks, options) for key in shown]
        for chart in charts:
            chart.load()
        self._set_charts(charts)
        self.page_label.object = (
            '<span class="aq-muted" id="aq-metric-pages">'
            + (
                f"metrics {self.page * CHARTS_PER_PAGE + 1}–{self.page * CHARTS_PER_PAGE + len(shown)} of {len(keys)}"
                if keys
                else "no metrics logged yet"
            )
            + "</span>"
        )
        self.previous.disabled = self.page == 0
        self.next.disabled = self.page >= pages - 1
        self.window.visible = self.smoothing.value == "ma"
        self.weight.visible = self.smoothing.value == "ema"

    def _set_charts(self, charts: list[MetricChart]) -> None:
        for old in self.charts:
            old.retire()
        self.charts = charts
        self.grid.objects = [pn.pane.Bokeh(c.figure, sizing_mode="stretch_width") for c in charts]

    def _rebuild(self, *_: object) -> None:
        if self.run is not None:
            self._build_charts()

    def _refilter(self, *_: object) -> None:
        self.page = 0
        self._rebuild()

    def _turn(self, by: int) -> None:
        self.page = max(0, self.page + by)
        self._rebuild()

    def _resmooth(self, *_: object) -> None:
        smoothing = self._smoothing()
        self.window.visible = smoothing.kind == "ma"
        self.weight.visible = smoothing.kind == "ema"
        for chart in self.charts:
            chart.set_smoothing(smoothing)

    # -- live -------------------------------------------------------------------------------------
    def _from_hub(self, item: LiveItem) -> None:
        """On the hub's thread: hand the item to this session's document."""
        doc = self._doc
        if doc is None:
            self._apply(item)
        else:
            doc.add_next_tick_callback(partial(self._apply, item))

    def _apply(self, item: LiveItem) -> None:
        if self.run is None or item.run != self.run_id:
            return
        if isinstance(item, Points):
            if item.key not in self.keys:
                self.keys = self.api.keys(self.run_id)
                if len(self.charts) < CHARTS_PER_PAGE:
                    self._build_charts()
                    return
            for chart in self.charts:
                chart.take(item)
        elif isinstance(item, Resync):
            keys = self.api.keys(self.run_id)
            if keys != self.keys:
                self.keys = keys
                self._build_charts()
                return
            for chart in self.charts:
                chart.resync()
        elif isinstance(item, RunChange):
            try:
                self.run = self.api.run(self.run_id)
            except RunNotFoundError:
                return
            self._show_run()
            status = item.change.get("status")
            if status and str(status[-1][0]) in TERMINAL_STATUSES:
                for chart in self.charts:
                    chart.ended()
                self._notify(f"run {self.run.get('name') or self.run_id} is {status[-1][0]}")


def artifacts_of(api: Api, run_id: str) -> list[dict[str, Any]] | None:
    """The run's artifacts, when this ``Api`` can list them (None: it cannot)."""
    lister = getattr(api, "artifacts", None)
    if lister is None:
        return None
    try:
        return list(lister(run_id))
    except RunNotFoundError:
        return []


def summary_html(run: dict[str, Any]) -> str:
    e = html.escape
    name = run.get("name") or run["id"]
    ended = run.get("ended_at")
    started = run.get("started_at") or run.get("created_at")
    took = (ended or time.time()) - started if started else None
    facts = [
        ("id", f"<code>{e(run['id'])}</code>"),
        ("experiment", e(str(run.get("experiment") or "—"))),
        ("host", e(str(run.get("host") or "—"))),
        ("started", e(when(started))),
        ("duration", e(duration(took)) + ("" if ended else " (running)")),
        ("ranks", e(", ".join(str(r) for r in run.get("ranks", [])) or "—")),
    ]
    cells = "".join(f'<div><span class="aq-muted">{k}</span><br>{v}</div>' for k, v in facts)
    return (
        f'<div class="aq-card"><div style="display:flex;align-items:center;gap:12px">'
        f'<span class="aq-title" id="aq-run-name">{e(str(name))}</span>{badge(str(run.get("status", "")))}</div>'
        f'<div style="display:flex;gap:32px;flex-wrap:wrap;margin-top:6px">{cells}</div></div>'
    )


def _table(rows: list[tuple[str, ...]], head: tuple[str, ...] | None = None) -> str:
    e = html.escape
    out = "<table>"
    if head:
        out += "<tr>" + "".join(f"<th>{e(h)}</th>" for h in head) + "</tr>"
    for row in rows:
        out += "<tr>" + "".join(f"<td>{cell}</td>" for cell in row) + "</tr>"
    return out + "</table>"


def details_html(run: dict[str, Any], artifacts: list[dict[str, Any]] | None) -> str:
    """Params, tags, status history, ranks and incarnations, artifacts: every value escaped."""
    e = html.escape
    params = _table([(e(k), e(_text(v))) for k, v in sorted(run.get("params", {}).items())]) or ""
    if not run.get("params"):
        params = '<span class="aq-muted">no params</span>'
    tags = (
        _table([(e(k), e(str(v))) for k, v in sorted(run.get("tags", {}).items())])
        if run.get("tags")
        else '<span class="aq-muted">no tags</span>'
    )
    history = _table(
        [(badge(str(h["status"])), e(str(h["rank"])), e(when(h["at"]))) for h in run.get("status_history", [])],
        ("status", "rank", "at"),
    )
    incarnations = _table(
        [
            (
                e(str(i["rank"])),
                f"<code>{e(str(i['incarnation']))}</code>",
                e(str(i["batches"])),
                f'<span class="aq-gap">{e(str(i["missing"]))} missing</span>' if i["missing"] else "complete",
            )
            for i in run.get("incarnations", [])
        ],
        ("rank", "incarnation", "batches", "gaps"),
    )
    files = artifacts_html(run["id"], artifacts)
    cards = [
        ("Params", params),
        ("Tags", tags),
        ("Status history", history),
        ("Ranks and incarnations", incarnations),
    ]
    body = "".join(
        f'<div class="aq-card" style="flex:1 1 260px;max-height:240px;overflow:auto"><h3>{title}</h3>{content}</div>'
        for title, content in cards
    )
    body += (
        '<div class="aq-card" id="aq-artifacts" style="flex:1 1 100%;max-height:420px;overflow:auto">'
        f"<h3>Artifacts</h3>{files}</div>"
    )
    return f'<div style="display:flex;gap:10px;flex-wrap:wrap">{body}</div>'


def artifacts_html(run_id: str, artifacts: list[dict[str, Any]] | None) -> str:
    """The artifacts as a table with download links from this dashboard's server, and the stored
    raster figures as thumbnails above it; every name is text, every link quoted."""
    e = html.escape
    if not artifacts:
        return '<span class="aq-muted">no artifacts</span>'
    rows: list[tuple[str, ...]] = []
    thumbs: list[str] = []
    for a in artifacts:
        name, state = str(a["name"]), str(a.get("state", ""))
        rank = a.get("rank")
        url = e(artifact_url(run_id, name, int(rank) if isinstance(rank, int) else None))
        link = (
            f'<a class="aq-artifact" href="{url}" download>{e(name)}</a>'
            if state == "stored"
            else f'<span class="aq-artifact">{e(name)}</span>'
        )
        sha = str(a.get("sha256") or "")
        rows.append(
            (
                link,
                e(str(a.get("kind", ""))),
                e(_size(a.get("size"))),
                f'<code title="{e(sha)}">{e(sha[:12])}</code>' if sha else "—",
                e(str(rank if rank is not None else "—")),
                e(str(a.get("step") if a.get("step") is not None else "—")),
                e(state),
            )
        )
        if a.get("kind") == "figure" and state == "stored" and is_inline(str(a.get("media_type", ""))):
            thumbs.append(
                f'<a href="{url}" target="_blank" rel="noopener" title="{e(name)}">'
                f'<img class="aq-thumb" src="{url}" alt="{e(name)}" '
                'style="max-height:140px;max-width:220px;border:1px solid #ddd;border-radius:4px"></a>'
            )
    gallery = f'<div style="display:flex;gap:8px;flex-wrap:wrap;margin-bottom:8px">{"".join(thumbs)}</div>'
    return (gallery if thumbs else "") + _table(rows, ("name", "kind", "size", "sha256", "rank", "step", "state"))


def _text(value: Any) -> str:
    import json

    return value if isinstance(value, str) else json.dumps(value)


def _size(size: Any) -> str:
    if not isinstance(size, int):
        return ""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return ""
