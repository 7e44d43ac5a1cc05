"""The dashboard: a per-session factory (``create_app``) and the process-wide parts it shares.

Each browser session gets its own template and views; the ``Dashboard`` (the ``Api``, the live
hub, the health monitor) is one per server process. The view lives in the URL (``/`` the list,
``/?run=ID`` a run, ``/?compare=ID,ID`` a comparison, ``/?visualize=ID,ID``), kept in sync with
``pn.state.location``, so a link can be shared and a reload keeps the view.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import panel as pn
import param
import redis

from aquarium.collector import Api

from .health import HealthMonitor, Level
from .live import HubState, LiveHub
from .theme import CSS, TEMPLATE_OPTIONS, html_pane
from .views.experiments import REFRESH_SECONDS, ExperimentsView
from .views.run import RunView

__all__ = ["Dashboard", "create_app"]

log = logging.getLogger("aquarium.ui.app")

TITLE = "Aquarium"
TABS = ("experiments", "run", "compare", "visualize", "export")
LEVEL_COLOURS = {Level.OK: "#5cb85c", Level.WARN: "#f0ad4e", Level.DOWN: "#d9534f", Level.UNKNOWN: "#a9b7c6"}


@dataclass
class Dashboard:
    """What every session of one server process shares."""

    api: Api
    hub: LiveHub
    health: HealthMonitor
    source: str = ""  # what export workers read: the data dir (absolute) or the API URL
    redis_url: str | None = None  # where export jobs are queued; None: no Export tab actions
    _connection: redis.Redis | None = None

    def export_connection(self) -> redis.Redis | None:
        """One Redis client for every session's export jobs (a thread-safe pool)."""
        if self._connection is None and self.redis_url:
            self._connection = redis.Redis.from_url(self.redis_url, socket_connect_timeout=5.0, socket_timeout=10.0)
        return self._connection

    def start(self) -> "Dashboard":
        self.hub.start()
        self.health.start()
        return self

    def stop(self) -> None:
        self.hub.stop()
        self.health.stop()
        self.api.close()
        if self._connection is not None:
            self._connection.close()


class Route(param.Parameterized):
    """The view in the URL: which run, which runs compared or visualized."""

    run = param.String(default="")
    compare = param.String(default="")
    visualize = param.String(default="")


def _ids(text: str) -> list[str]:
    return [part for part in (p.strip() for p in text.split(",")) if part]


def _view_class(module: str, name: str) -> Any:
    """The other views (built beside this app) when present; None until they land."""
    full = f"aquarium.ui.views.{module}"
    if importlib.util.find_spec(full) is None:
        return None
    return getattr(importlib.import_module(full), name, None)


class Session:
    """One browser session: the template, its views, and the URL they follow."""

    def __init__(self, dashboard: Dashboard) -> None:
        self.dashboard = dashboard
        self.api, self.hub = dashboard.api, dashboard.hub
        self.route = Route()  # type: ignore[no-untyped-call]
        self.footer = html_pane("", sizing_mode="stretch_width")
        self.state = html_pane("", align="center")
        self.refresh_button = pn.widgets.Button(label="↻ Refresh", color="primary", width=110, align="center")
        self.refresh_button.on_click(lambda _: self.refresh())
        self.experiments = ExperimentsView(self.api, self.hub, self.open_run, self.open_compare, notify=self.say)
        self.run_view = RunView(self.api, self.hub, "", notify=self.say)
        self.compare_slot = pn.Column(sizing_mode="stretch_width")
        self.visualize_slot = pn.Column(sizing_mode="stretch_width")
        self.export_view = self._export_view()
        self._shown: dict[str, str] = {}  # tab -> the ids its view was built for
        self.tabs = pn.Tabs(
            ("Experiments", self.experiments),
            ("Run", self.run_view),
            ("Compare", self.compare_slot),
            ("Visualize", self.visualize_slot),
            ("Export", self.export_view),
            dynamic=True,
            sizing_mode="stretch_width",
        )
        self.tabs.param.watch(self._tab_changed, "active")
        self.location = location = pn.state.location  # this session's (pn.state's follows the current doc)
        if location is not None:  # the URL the page was opened with
            query = location.query_params
            self.route.param.update({k: str(query.get(k) or "") for k in ("run", "compare", "visualize")})
            location.param.watch(self._url_changed, "search")
        self.route.param.watch(self._route_changed, ["run", "compare", "visualize"])
        self._route_changed()
        self.show_health()
        self.say("ready")

    def _export_view(self) -> Any:
        """The Export tab: export cards for the runs ticked in the list (jobs need Redis)."""
        connection = self.dashboard.export_connection()
        if connection is None:
            return html_pane(
                '<div class="aq-card"><h3>Export</h3>Exports run as jobs on Redis: start the dashboard with '
                "<code>--redis-url</code> (<code>aquarium up</code> does) and a worker.</div>",
                sizing_mode="stretch_width",
            )
        from .views.exports import ExportView

        view = ExportView(connection, self.dashboard.source, run_ids=list(self.experiments.selected))
        self.experiments.param.watch(lambda event: setattr(view, "run_ids", list(event.new)), "selected")
        return view

    # -- the template -----------------------------------------------------------------------------
    def template(self) -> pn.template.BootstrapTemplate:
        pn.extension("tabulator")  # the table's JS, even when the page opens on another tab
        template = pn.template.BootstrapTemplate(
            title=TITLE,
            header=[pn.Row(pn.layout.HSpacer(), self.state, self.refresh_button, sizing_mode="stretch_width")],
            main=[pn.Column(self.tabs, self.footer, sizing_mode="stretch_width")],
            raw_css=[CSS],
            **TEMPLATE_OPTIONS,
        )
        if pn.state.curdoc is not None:
            pn.state.add_periodic_callback(self.show_health, period=2000)
            pn.state.add_periodic_callback(self._tick, period=int(REFRESH_SECONDS * 1000))
            pn.state.on_session_destroyed(lambda _context: self.close())
        return template

    def say(self, message: str) -> None:
        """A status message in the footer."""
        stamp = time.strftime("%H:%M:%S")
        self.footer.object = (
            f'<div class="aq-footer"><span id="aq-status">{html.escape(stamp)} · {html.escape(message)}</span></div>'
        )

    def show_health(self) -> None:
        checks = list(self.dashboard.health.latest.checks)
        live = self.hub.state
        parts = []
        for check in checks:
            level = check.level
            detail = check.detail
            if check.name == "Redis" and live is HubState.DISCONNECTED:
                level, detail = Level.DOWN, f"live updates lost: {self.hub.error}"
            parts.append(
                f'<span title="{html.escape(detail)}"><span class="aq-dot" style="background:{LEVEL_COLOURS[level]}">'
                f"</span>{html.escape(check.name)}</span>"
            )
        self.state.object = f'<span class="aq-state" id="aq-health">{"".join(parts)}</span>'

    def close(self) -> None:
        self.experiments.close()
        self.run_view.close()

    # -- navigation -------------------------------------------------------------------------------
    def open_run(self, run_id: str) -> None:
        self.route.param.update(run=run_id, compare="", visualize="")

    def open_compare(self, run_ids: list[str]) -> None:
        self.route.param.update(run="", compare=",".join(run_ids), visualize="")

    def _url_changed(self, event: param.parameterized.Event) -> None:
        """The browser went back or forward: follow its URL."""
        location = self.location
        if location is not None:
            query = location.query_params
            self.route.param.update({k: str(query.get(k) or "") for k in ("run", "compare", "visualize")})

    def _write_url(self) -> None:
        """The route as a clean query string: ``?run=ID``, ``?compare=A,B``, or nothing for the list."""
        location = self.location
        if location is None:
            return
        route = self.route
        pairs = [
            (k, v) for k, v in (("run", route.run), ("compare", route.compare), ("visualize", route.visualize)) if v
        ]
        search = ("?" + urlencode(pairs, safe=",")) if pairs else ""
        if location.search != search:
            location.search = search

    def _route_changed(self, *_: object) -> None:
        self._write_url()
        route = self.route
        if route.compare:
            self._show("compare", route.compare)
        elif route.visualize:
            self._show("visualize", route.visualize)
        elif route.run:
            self._show("run", route.run)
        else:
            self.tabs.active = 0

    def _show(self, tab: str, ids: str) -> None:
        if self._shown.get(tab) != ids:
            self._shown[tab] = ids
            if tab == "run":
                self.run_view.run_id = ids
                self.run_view.refresh()
                self.say(f"run {ids}")
            else:
                self._fill(tab, _ids(ids))
        self.tabs.active = TABS.index(tab)

    def _fill(self, tab: str, run_ids: list[str]) -> None:
        slot = self.compare_slot if tab == "compare" else self.visualize_slot
        module, name = ("compare", "CompareView") if tab == "compare" else ("visualize", "VisualizeView")
        view = _view_class(module, name)
        if view is None:
            names = ", ".join(f"<code>{html.escape(i)}</code>" for i in run_ids) or "no runs"
            slot.objects = [
                html_pane(
                    f'<div class="aq-card"><h3>{tab.title()}</h3>The {tab} view is coming with the next '
                    f"release; selected: {names}.</div>",
                    sizing_mode="stretch_width",
                )
            ]
        else:
            slot.objects = [view(self.api, run_ids)]
        self.say(f"{tab}: {len(run_ids)} run{'s' if len(run_ids) != 1 else ''}")

    def _tab_changed(self, event: param.parameterized.Event) -> None:
        tab = TABS[event.new]
        route = self.route
        if tab == "experiments" and (route.run or route.compare or route.visualize):
            route.param.update(run="", compare="", visualize="")
        elif tab == "run" and self._shown.get("run") and not route.run:
            route.param.update(run=self._shown["run"], compare="", visualize="")
        elif tab == "compare":
            ids = self._shown.get("compare") or ",".join(self.experiments.selected)
            if ids and route.compare != ids:
                route.param.update(run="", compare=ids, visualize="")
        elif tab == "visualize":
            ids = self._shown.get("visualize") or route.compare or route.run or ",".join(self.experiments.selected)
            if ids and route.visualize != ids:
                route.param.update(run="", compare="", visualize=ids)

    def refresh(self) -> None:
        """The refresh button: re-read what the current tab shows."""
        tab = TABS[self.tabs.active]
        if tab == "experiments":
            self.experiments.reload()
        elif tab == "run":
            self.run_view.refresh()
        elif tab == "export":
            poll = getattr(self.export_view, "poll", None)
            if poll is not None:
                poll()
        else:
            ids = self._shown.get(tab, "")
            self._fill(tab, _ids(ids))
        self.say(f"refreshed {tab}")

    def _tick(self) -> None:
        if TABS[self.tabs.active] == "experiments":
            self.experiments.tick()


def create_app(dashboard: Dashboard) -> pn.template.BootstrapTemplate:
    """The per-session factory ``pn.serve`` calls: a new template for each browser session."""
    return Session(dashboard).template()
