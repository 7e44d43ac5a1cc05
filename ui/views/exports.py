"""The Export view: one card per target that enqueues RQ export jobs for the selected runs, and a
live list of those jobs — progress bar, status, failure reason and the kept/not-kept report.

The jobs are the same as ``aquarium export``'s (``aquarium.workers.enqueue_export``): a worker
started by ``aquarium up`` or ``aquarium worker`` runs them, reading the runs from ``source``
(the data dir or the HTTP API this dashboard reads). Jobs are polled from the session's own
periodic callback, which stops when no job is active.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import panel as pn
import param
import redis
from rq.job import Job, JobStatus

from aquarium.workers import enqueue_export
from aquarium.workers.queue import outcome
from aquarium.workers.targets import TARGETS

POLL_MS = 500
DONE = (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED)


@dataclass(frozen=True)
class Field:
    """One option of a target's card: a text box, or a choice when ``choices`` is given."""

    name: str
    label: str
    default: str
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class TargetForm:
    """How a target's card asks for its options and turns them into one job's options."""

    title: str
    fields: tuple[Field, ...]
    options_of: Callable[[str, dict[str, str]], dict[str, Any]]


def _file_in(suffix: str) -> Callable[[str, dict[str, str]], dict[str, Any]]:
    def options(run: str, values: dict[str, str]) -> dict[str, Any]:
        out = {"out": str((Path(values["out"]).expanduser() / f"{run}{suffix}").resolve())}
        return {**out, "layout": values["layout"]} if "layout" in values else out

    return options


FORMS: dict[str, TargetForm] = {
    "mlflow": TargetForm(
        "MLflow",
        (Field("tracking_uri", "Tracking URI", "http://127.0.0.1:5000"),),
        lambda run, v: {"tracking_uri": v["tracking_uri"]},
    ),
    "tensorboard": TargetForm(
        "TensorBoard",
        (Field("log_dir", "Log directory", "./tensorboard"),),
        lambda run, v: {"log_dir": str(Path(v["log_dir"]).expanduser().resolve())},
    ),
    "wandb": TargetForm(
        "Weights & Biases",
        (
            Field("project", "Project (default: the run's experiment)", ""),
            Field("mode", "Mode", "offline", ("offline", "online")),
            Field("dir", "Directory (offline runs under <dir>/wandb)", "."),
        ),
        lambda run, v: {
            "project": v["project"] or None,
            "mode": v["mode"],
            "dir": str(Path(v["dir"]).expanduser().resolve()),
        },
    ),
    "json": TargetForm("JSON", (Field("out", "Directory", "./exports"),), _file_in(".json")),
    "csv": TargetForm(
        "CSV",
        (Field("out", "Directory", "./exports"), Field("layout", "Layout", "long", ("long", "wide"))),
        _file_in(".csv"),
    ),
    "seed": TargetForm(
        "Seed directories",
        (Field("out", "Base directory of the <name>_<id>/ dirs", "./neural_experiments"),),
        lambda run, v: {"out": str(Path(v["out"]).expanduser().resolve())},
    ),
}


def report_html(report: dict[str, Any]) -> str:
    """The kept/not-kept table of one finished export; every value escaped (names are data)."""
    esc = html.escape
    rows = []
    for name, tally in report["fields"].items():
        notes = [n for n in report["notes"] if n["field"] == name]
        text = "; ".join(
            ("" if n["kept"] else '<b class="aq-lost">not kept</b> ')
            + esc(f"{n['count']:,} {n['what']}: {n['how']}")
            + (esc(f" (e.g. {', '.join(n['examples'])})") if n["examples"] else "")
            for n in notes
        )
        lost = f'<b class="aq-lost">{tally["not_kept"]:,}</b>' if tally["not_kept"] else "0"
        rows.append(f"<tr><td>{esc(name)}</td><td>{tally['kept']:,}</td><td>{lost}</td><td>{text}</td></tr>")
    return (
        f'<div class="aq-report"><div>→ {esc(str(report["destination"]))}</div>'
        "<table><tr><th>field</th><th>kept</th><th>not kept</th><th>conversions and losses</th></tr>"
        + "".join(rows)
        + "</table></div>"
    )


class JobRow:
    """The widgets of one job, updated in place as the job runs."""

    def __init__(self, job: Job) -> None:
        self.job = job
        meta = job.meta
        self.title = pn.pane.HTML(
            f"<b>{html.escape(str(meta.get('run', '')))}</b> → {html.escape(str(meta.get('target', '')))}",
            width=320,
        )
        self.bar = pn.indicators.Progress(value=0, max=100, width=260, bar_color="info")
        self.state = pn.pane.HTML("queued", width=280, css_classes=["aq-job-state"])
        self.details = pn.pane.HTML("", sizing_mode="stretch_width")
        self.panel = pn.Column(pn.Row(self.title, self.bar, self.state), self.details, css_classes=["aq-job"])
        self.finished = False

    def refresh(self) -> None:
        """Read the job's status and meta from Redis and show them."""
        status = self.job.get_status(refresh=True)
        meta = self.job.get_meta(refresh=True)
        done, total = int(meta.get("done", 0) or 0), int(meta.get("total", 0) or 0)
        phase = html.escape(str(meta.get("phase", "")))
        if status == JobStatus.FINISHED:
            self.bar.value, self.bar.bar_color = 100, "success"
            self.state.object = f'<span class="aq-ok">finished</span> · {total:,} points'
            result = outcome(self.job)
            if result.report is not None:
                self.details.object = report_html(result.report)
        elif status in DONE:
            self.bar.bar_color = "danger"
            reason = html.escape(outcome(self.job).error or str(status))
            self.state.object = f'<span class="aq-failed">{html.escape(str(status.value))}</span>'
            self.details.object = f'<div class="aq-error">{reason}</div>'
        else:
            self.bar.value = int(100 * done / total) if total else 0
            label = html.escape(str(status.value if status else "unknown"))
            self.state.object = f"{label} · {phase} {done:,}/{total:,}" if total else f"{label} · {phase}"
        self.finished = status in DONE


class ExportView(pn.viewable.Viewer):
    """Export the selected runs: a card per registered target, then the jobs, live."""

    run_ids = param.List(default=[], item_type=str, doc="The runs the cards export.")

    def __init__(self, connection: redis.Redis, source: str, **params: Any) -> None:
        super().__init__(**params)  # type: ignore[no-untyped-call]  # param leaves it unannotated
        self._connection, self._source = connection, source
        self._rows: list[JobRow] = []
        self._jobs = pn.Column(sizing_mode="stretch_width", name="jobs")
        self._message = pn.pane.HTML("", css_classes=["aq-message"])
        self._poller: Any = None
        self._selection = pn.pane.HTML(self._selection_text(), css_classes=["aq-selection"])
        cards = [self._card(name, form) for name, form in FORMS.items() if name in TARGETS]
        self._layout = pn.Column(
            self._selection,
            pn.FlexBox(*cards, gap="16px"),
            self._message,
            pn.pane.HTML("<h3>Jobs</h3>"),
            self._jobs,
            sizing_mode="stretch_width",
        )

    def __panel__(self) -> pn.viewable.Viewable:
        return self._layout

    @param.depends("run_ids", watch=True)
    def _on_selection(self) -> None:
        self._selection.object = self._selection_text()

    def _selection_text(self) -> str:
        n = len(self.run_ids)
        if not n:
            return "Select runs in the Experiments tab to export them."
        shown = ", ".join(html.escape(r) for r in self.run_ids[:5]) + (" …" if n > 5 else "")
        return f"<b>{n} run{'s' if n != 1 else ''} selected</b>: {shown}"

    def _card(self, target: str, form: TargetForm) -> pn.Card:
        inputs: dict[str, Any] = {}
        for f in form.fields:
            if f.choices:
                inputs[f.name] = pn.widgets.Select(label=f.label, options=list(f.choices), value=f.default, width=220)
            else:
                inputs[f.name] = pn.widgets.TextInput(label=f.label, value=f.default, width=220)
        button = pn.widgets.Button(label=f"Export to {form.title}", color="primary", width=220)

        def on_click(_event: Any) -> None:
            self.export(target, {k: str(w.value) for k, w in inputs.items()})

        button.on_click(on_click)
        return pn.Card(*inputs.values(), button, title=form.title, collapsible=False, width=260,
                       css_classes=["aq-export-card"], name=f"export-{target}")  # fmt: skip

    def export(self, target: str, values: dict[str, str]) -> list[Job]:
        """Enqueue ``target``'s job for every selected run (an active identical job is reused)."""
        if not self.run_ids:
            self._message.object = '<span class="aq-failed">Select at least one run first.</span>'
            return []
        form = FORMS[target]
        try:
            jobs = [
                enqueue_export(self._connection, target, run, self._source, form.options_of(run, values))
                for run in self.run_ids
            ]
        except (redis.RedisError, OSError) as e:
            self._message.object = f'<span class="aq-failed">Could not enqueue: {html.escape(str(e))}</span>'
            return []
        known = {row.job.id for row in self._rows}
        for job in jobs:
            if job.id not in known:
                row = JobRow(job)
                self._rows.insert(0, row)
                self._jobs.insert(0, row.panel)
        self._message.object = f"Enqueued {len(jobs)} {form.title} export{'s' if len(jobs) != 1 else ''}."
        self.poll()
        if self._poller is None or not self._poller.running:
            self._poller = pn.state.add_periodic_callback(self.poll, period=POLL_MS)
        return jobs

    def poll(self) -> None:
        """Refresh every unfinished job; stop polling when none is left."""
        active = [row for row in self._rows if not row.finished]
        for row in active:
            try:
                row.refresh()
            except (redis.RedisError, OSError) as e:
                row.state.object = f'<span class="aq-failed">Redis: {html.escape(str(e))}</span>'
        if self._poller is not None and all(row.finished for row in self._rows):
            self._poller.stop()
