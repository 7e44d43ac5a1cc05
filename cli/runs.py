"""`aquarium ls` and `aquarium show`: reading the store."""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich import box
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table

from aquarium.agent.errors import AquariumError, RunNotFoundError
from aquarium.agent.statuses import ENDED_BADLY, ENDED_WELL, STOPPED

from .options import api_url_option, console, data_dir_option, plural, print_table

if TYPE_CHECKING:
    from aquarium.collector import Api

MAX_LISTED_MATCHES = 20  # an ambiguous RUN lists this many candidates

WHOLE_COLUMNS = ("id", "name")  # never folded: users copy them into `aquarium show`

STATUS_STYLES = {"running": "yellow"} | dict.fromkeys(ENDED_WELL, "green") | dict.fromkeys(ENDED_BADLY, "red")
STATUS_STYLES |= dict.fromkeys(STOPPED, "magenta")


@click.command("ls")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of runs instead of a table.")
@click.option("--experiment", default=None, help="Only the runs of this experiment.")
@click.option(
    "--filter",
    "filter_",
    metavar="EXPR",
    default=None,
    help="Only the runs matching EXPR, e.g. 'params.lr > 1e-3 and metrics.val_loss.min < 0.3 and \"prod\" in tags' "
    "(see README, Finding runs).",
)
@click.option(
    "--sort",
    metavar="FIELDS",
    default=None,
    help="Order by these comma-separated fields, '-' first for descending, e.g. -metrics.val_loss.min "
    "(runs without the field come last). Default: newest first.",
)
@click.option("--limit", type=click.IntRange(min=0), default=None, help="Show at most this many runs.")
@click.option("--offset", type=click.IntRange(min=0), default=0, show_default=True, help="Skip this many runs first.")
@api_url_option
@click.pass_context
def ls_command(
    ctx: click.Context,
    data_dir: Path,
    api_url: str | None,
    as_json: bool,
    experiment: str | None,
    filter_: str | None,
    sort: str | None,
    limit: int | None,
    offset: int,
) -> None:
    """List runs: id, name, experiment, status, ranks, when the run started.

    --filter and --sort take the run query language: fields params.<name>,
    metrics.<key>.{last,min,max,count}, tags, tags.<name>, status, experiment, name, id,
    created, started, ended, duration; operators == != < <= > >= in contains ~ and or not.

    Spooled batches are ingested first, so offline runs show up (a read-only data dir is read
    as it is, and the command says how many spool files wait).
    """
    from aquarium.collector import QueryError, parse_filter, parse_sort

    for option, text, parse in (("--filter", filter_, parse_filter), ("--sort", sort, parse_sort)):
        if text is not None and text.strip():
            try:
                parse(text)
            except QueryError as e:  # a usage error: the message, the query and a caret; exit 2
                raise click.BadParameter(str(e), ctx=ctx, param_hint=f"'{option}'") from e
    if api_url is None and not data_dir.exists():
        click.echo("[]" if as_json else f"no runs: {data_dir} does not exist yet")
        return
    query = _with_experiment(filter_, experiment)
    with open_api(data_dir, api_url) as api:
        try:
            page = api.search(query, sort, limit, offset)
        except QueryError as e:  # only when --experiment makes the filter too long
            raise click.BadParameter(str(e), ctx=ctx, param_hint="'--filter'") from e
    runs = page.runs
    if as_json:
        click.echo(strict_json(runs))
        return
    if not runs:
        if page.total:
            click.echo(f"no runs from offset {offset:,}: {plural(page.total, 'run')} match")
        else:
            where = f" in experiment {experiment!r}" if experiment else ""
            click.echo(f"no runs{where}" + (" match the filter" if filter_ and filter_.strip() else ""))
        return
    matching = " matching the filter" if filter_ and filter_.strip() else ""
    caption = None
    if len(runs) < page.total:
        shown = f"{offset + 1:,}-{offset + len(runs):,}" if offset else f"{len(runs):,}"
        caption = f"showing {shown} of {plural(page.total, 'run')}"
    table = Table(
        title=f"{plural(page.total, 'run')}{matching} in {escape(api_url or str(data_dir))}",
        title_justify="left",
        caption=caption,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    sorted_by = [s.field for s in parse_sort(sort)] if sort and sort.strip() else []
    extra = [f for f in sorted_by if f.kind in ("param", "metric", "tag", "duration")]
    sort_columns = [str(f) for f in extra]
    for column in ("id", "name", "experiment", "status", "ranks", "started", *sort_columns):
        table.add_column(
            escape(column),
            no_wrap=column in WHOLE_COLUMNS or column in sort_columns,
            overflow="fold",
            min_width=len(column),
            justify="right" if column == "ranks" else "left",
        )
    for run in runs:
        table.add_row(
            escape(run["id"]),
            escape(run["name"] or ""),
            escape(run["experiment"] or ""),
            _status(run["status"]),
            str(run["ranks"]),
            _when(run["started_at"]),
            *(escape(_shown(_field_value(run, f))) for f in extra),
        )
    print_table(console(), table)


def _quoted(text: str) -> str:
    """``text`` as a string literal of the query language."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _with_experiment(query: str | None, experiment: str | None) -> str | None:
    """The filter, restricted to --experiment (as a quoted string literal, escaped)."""
    if experiment is None:
        return query
    return f"experiment == {_quoted(experiment)}" + (f" and ({query})" if query and query.strip() else "")


def _field_value(run: dict[str, Any], field: Any) -> Any:
    if field.kind == "param":
        return run["params"].get(field.name)
    if field.kind == "tag":
        return run["tags"].get(field.name)
    if field.kind == "metric":
        return run["metrics"].get(field.name, {}).get(field.agg)
    return run["duration"]


def _shown(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.6g}"
    return value if isinstance(value, str) else json.dumps(value)


@click.command()
@click.argument("run_ref", metavar="RUN")
@data_dir_option
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print one JSON object: id, name, experiment, params, status, ranks, metrics "
    "(count, last, min, max per key), artifacts, ... Non-finite numbers are the strings NaN, Infinity, -Infinity.",
)
@api_url_option
def show(run_ref: str, data_dir: Path, as_json: bool, api_url: str | None) -> None:
    """Show one run: params, metrics summary (points, last, min, max), status history, delivery.

    RUN is a run id, a unique prefix of one, or a run name; when several runs match, they are
    listed and the exit code is 1.
    """
    if api_url is None and not data_dir.exists():
        raise click.ClickException(f"no run with id {run_ref!r}: {data_dir} does not exist")
    with open_api(data_dir, api_url) as api:
        run = api.run(find_run(api, run_ref))
        if as_json:
            run["artifacts"] = api.artifacts(run["id"])
    if as_json:
        click.echo(strict_json(run))
        return
    out = console()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for label, value in (
        ("id", escape(run["id"])),
        ("experiment", escape(run["experiment"] or "")),
        ("status", _status(run["status"])),
        ("ranks", f"{', '.join(map(str, run['ranks'])) or '-'} (world size {run['world_size'] or '?'})"),
        ("host", escape(run["host"] or "-")),
        ("started", _when(run["started_at"])),
        ("first seen", _when(run["created_at"])),
        ("ended", _when(run["ended_at"])),
        ("tags", escape(", ".join(f"{k}={v}" if v else k for k, v in run["tags"].items()) or "-")),
    ):
        head.add_row(label, value)
    out.print(Panel(head, title=escape(run["name"] or run["id"]), title_align="left", expand=False))
    if run["params"]:
        params = Table("param", "value", title="params", title_justify="left")
        params.columns[0].no_wrap = True
        for key, value in run["params"].items():
            params.add_row(escape(key), escape(json.dumps(value) if not isinstance(value, str) else value))
        print_table(out, params)
    if run["metrics"]:
        metrics = Table(
            "metric",
            "points",
            "ranks",
            "last (step)",
            "min (step)",
            "max (step)",
            title="metrics",
            title_justify="left",
        )
        metrics.columns[0].no_wrap = True
        for key, m in run["metrics"].items():
            metrics.add_row(
                escape(key),
                f"{m['count']:,}",
                str(m["ranks"]),
                _at(m["last"], m["last_step"]),
                _at(m["min"], m["min_step"]),
                _at(m["max"], m["max_step"]),
            )
        print_table(out, metrics)
    if run["status_history"]:
        history = Table("at", "rank", "status", title="status history", title_justify="left")
        for h in run["status_history"]:
            history.add_row(_when(h["at"]), str(h["rank"]), _status(h["status"]))
        out.print(history)
    missing = [i for i in run["incarnations"] if i["missing"]]
    for i in missing:
        out.print(
            f"[yellow]rank {i['rank']} incarnation {escape(i['incarnation'])}: "
            f"{plural(i['missing'], 'batch', 'batches')} "
            f"missing below seq {i['max_seq']}[/yellow]"
        )


def open_api(data_dir: Path, api_url: str | None) -> Api:
    """The reader for a command: the HTTP API at ``api_url``, else the data dir's store, after
    ingesting its spool files (so offline runs show up) when this process may write there."""
    from aquarium.collector import Api, Store

    if api_url:
        return Api(api_url)
    with Store(data_dir) as store:  # creates an empty store in a writable dir: "no runs", not an error
        _ingest_spool_or_say_what_waits(store)
    return Api(str(data_dir))


def _ingest_spool_or_say_what_waits(store: Any) -> None:
    """Offline runs show up once their spool files are ingested; a read-only store reads what it
    holds and says (on stderr, so --json stays parseable) how many spool files wait."""
    if not store.read_only:
        store.ingest_spool()
        return
    waiting = len(store.waiting_spool_files())
    if waiting:
        click.echo(
            f"{store.data_dir} is read-only: {waiting} spool file{'s' if waiting != 1 else ''} "
            "wait to be ingested (open it where it is writable, or copy it)",
            err=True,
        )


def _status(status: str | None) -> str:
    text = escape(status or "-")
    style = STATUS_STYLES.get(status or "")
    return f"[{style}]{text}[/{style}]" if style else text


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _at(value: float | None, step: int | None) -> str:
    return "-" if value is None else f"{value:.6g} ({step})"  # NaN prints as nan


class AmbiguousRunError(AquariumError):
    """Raised by `aquarium show` when RUN is a prefix or a name of several runs."""

    def __init__(self, ref: str, matches: list[dict[str, Any]], total: int) -> None:
        self.ref, self.matches = ref, matches
        listed = "\n".join(f"  {m['id']}  {m['name'] or ''}".rstrip() for m in matches)
        more = f"\n  ... and {total - len(matches):,} more" if total > len(matches) else ""
        super().__init__(f"{ref!r} matches {plural(total, 'run')}; give one of these ids:\n{listed}{more}")


def find_run(api: Api, ref: str) -> str:
    """The id of the one run whose id is ``ref``, else starts with it, else is named ``ref``."""
    if api.search(f"id == {_quoted(ref)}", limit=1).total:
        return ref
    prefix = "^" + re.escape(ref)
    page = api.search(f"id ~ {_quoted(prefix)} or name == {_quoted(ref)}", sort="id", limit=MAX_LISTED_MATCHES)
    matches = page.runs
    if not matches:
        raise RunNotFoundError(ref)
    if page.total > 1:
        raise AmbiguousRunError(ref, matches, page.total)
    return str(matches[0]["id"])


def strict_json(value: Any) -> str:
    return json.dumps(_finite(value), indent=2, allow_nan=False)


def _finite(value: Any) -> Any:
    """Strict JSON: NaN and infinities become the strings JavaScript would print."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
