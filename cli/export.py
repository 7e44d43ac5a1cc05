"""`aquarium export mlflow|tensorboard|wandb|json|csv|seed RUN...`: export runs through RQ jobs or in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich import box
from rich.table import Table

from .options import api_url_option, console, data_dir_option, plural, print_table, redis_options, say

F = TypeVar("F", bound=Callable[..., Any])


def common(f: F) -> F:
    for decorate in (
        click.argument("runs", nargs=-1),
        click.option("--filter", "filter_", metavar="EXPR", default=None, help="Also every run matching EXPR."),
        data_dir_option,
        api_url_option,
        redis_options(),
        click.option("--no-wait", is_flag=True, help="Only enqueue the jobs, print their ids and exit."),
        click.option("--sync", is_flag=True, help="Export in this process: no Redis, no worker."),
        click.option("--timeout", type=int, default=3600, show_default=True, help="Seconds one job may run."),
    ):
        f = decorate(f)
    return f


@click.group("export")
def export() -> None:
    """Export runs to MLflow, TensorBoard, W&B, JSON, CSV or seed dirs, with a kept/not-kept report per run."""


@export.command("mlflow")
@common
@click.option("--tracking-uri", required=True, envvar="MLFLOW_TRACKING_URI", help="MLflow tracking server.")
def mlflow_command(tracking_uri: str, **kw: Any) -> None:
    """Export RUN... (ids, prefixes, names) to an MLflow tracking server."""
    _export("mlflow", lambda run: {"tracking_uri": tracking_uri}, **kw)


@export.command("tensorboard")
@common
@click.option("--log-dir", required=True, type=click.Path(path_type=Path), help="TensorBoard log directory.")
def tensorboard_command(log_dir: Path, **kw: Any) -> None:
    """Write RUN... as TensorBoard event files: <log-dir>/<experiment>/<run name or id>."""
    _export("tensorboard", lambda run: {"log_dir": str(log_dir.resolve())}, **kw)


@export.command("wandb")
@common
@click.option("--project", default=None, help="W&B project (default: the run's experiment).")
@click.option("--tag", "tags", multiple=True, help="Another W&B tag (repeatable).")
@click.option("--offline", is_flag=True, help="Offline run dirs even with WANDB_API_KEY set.")
@click.option("--dir", "wandb_dir", type=click.Path(path_type=Path), default=None, envvar="WANDB_DIR",
              help="Where W&B writes <dir>/wandb/ (default: the current directory).")  # fmt: skip
@click.option("--per-rank", is_flag=True, help="One W&B run per rank (<id>-rank<k>) instead of <key>/rank<k>.")
def wandb_command(
    project: str | None, tags: tuple[str, ...], offline: bool, wandb_dir: Path | None, per_rank: bool, **kw: Any
) -> None:
    """Export RUN... to Weights & Biases: online with WANDB_API_KEY, else offline dirs for `wandb sync`."""
    from aquarium.workers.compat import wandb_options

    options = wandb_options(project, tags, True if offline else None, str(wandb_dir) if wandb_dir else None, per_rank)
    _export("wandb", lambda run: options, **kw)


@export.command("json")
@common
@click.option("--out", required=True, type=click.Path(path_type=Path), help="File (one run) or directory.")
def json_command(out: Path, **kw: Any) -> None:
    """Write RUN... as JSON documents (the run and its series); several runs: <out>/<run>.json."""
    _export("json", _out_of(out, ".json", kw), **kw)


@export.command("seed")
@common
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Base dir of the <name>_<id>/ dirs.")
def seed_command(out: Path, **kw: Any) -> None:
    """Write RUN... in the seed tracker's format: <out>/<name>_<id>/ (metadata.json, metrics.json, ...)."""
    _export("seed", lambda run: {"out": str(out.resolve())}, **kw)


@export.command("csv")
@common
@click.option("--out", required=True, type=click.Path(path_type=Path), help="File (one run) or directory.")
@click.option("--wide", is_flag=True, help="One row per step, a column per key (default: one row per point).")
def csv_command(out: Path, wide: bool, **kw: Any) -> None:
    """Write RUN... as CSV: long (run,key,rank,step,value,time) or --wide; several runs: <out>/<run>.csv."""
    layout = "wide" if wide else "long"
    path_of = _out_of(out, ".csv", kw)
    _export("csv", lambda run: {**path_of(run), "layout": layout}, **kw)


def _out_of(out: Path, suffix: str, kw: dict[str, Any]) -> Callable[[str], dict[str, Any]]:
    several = len(kw["runs"]) > 1 or kw["filter_"] is not None or out.is_dir()
    return lambda run: {"out": str((out / f"{run}{suffix}" if several else out).resolve())}


def _export(
    target: str,
    options_of: Callable[[str], dict[str, Any]],
    runs: tuple[str, ...],
    filter_: str | None,
    data_dir: Path,
    api_url: str | None,
    redis_url: str,
    prefix: str,
    no_wait: bool,
    sync: bool,
    timeout: int,
) -> None:
    from .runs import find_run, open_api

    if not runs and filter_ is None:
        raise click.UsageError("give RUN ids or --filter")
    with open_api(data_dir, api_url) as api:
        ids = [find_run(api, ref) for ref in runs]
        if filter_ is not None:
            offset = 0
            while True:
                page = api.search(filter_, sort="id", limit=1000, offset=offset)
                ids += [str(r["id"]) for r in page.runs]
                offset += len(page.runs)
                if not page.runs or offset >= page.total:
                    break
    ids = list(dict.fromkeys(ids))
    if not ids:
        say("no run matches")
        return
    source = api_url or str(data_dir.resolve())
    outcomes: list[Any] | None
    if sync:
        outcomes = _run_here(target, ids, source, options_of)
    else:
        outcomes = _run_queued(target, ids, source, options_of, redis_url, no_wait, timeout)
        if outcomes is None:
            return
    failed = 0
    for o in outcomes:
        if o.report is not None:
            print_report(o.report)
        else:
            failed += 1
            click.echo(f"{o.run} → {o.target}: {o.status}: {o.error}", err=True)
    if failed:
        raise click.ClickException(f"{plural(failed, 'export')} of {len(outcomes)} failed")


def _run_here(target: str, ids: list[str], source: str, options_of: Callable[[str], dict[str, Any]]) -> list[Any]:
    from aquarium.workers import Outcome, run_export
    from aquarium.workers.progress_bar import JobBars

    outcomes = []
    with JobBars([]) as bars:
        for run in ids:
            task = bars.progress.add_task(f"{run} → {target}", total=None, state="")

            def step(done: int, total: int, phase: str, task: Any = task) -> None:
                bars.progress.update(task, completed=done, total=total or None, state=phase)

            try:
                report = run_export(target, run, source, options_of(run), step)
                outcomes.append(Outcome("", target, run, "finished", report=report))
            except Exception as e:  # as a worker would: the reason is shown, the next run goes on
                outcomes.append(Outcome("", target, run, "failed", error=f"{type(e).__name__}: {e}"))
    return outcomes


def _run_queued(
    target: str,
    ids: list[str],
    source: str,
    options_of: Callable[[str], dict[str, Any]],
    redis_url: str,
    no_wait: bool,
    timeout: int,
) -> list[Any] | None:
    import redis

    from aquarium.workers import enqueue_export, wait_for
    from aquarium.workers.progress_bar import JobBars

    connection = redis.Redis.from_url(redis_url)
    jobs = [enqueue_export(connection, target, run, source, options_of(run), timeout=timeout) for run in ids]
    if no_wait:
        for job in jobs:
            say(f"{job.id}  {job.meta.get('run')} → {target}  {job.get_status().value}")
        return None
    with JobBars(jobs) as bars:
        return wait_for(jobs, bars.update)


def print_report(report: dict[str, Any]) -> None:
    """The kept/not-kept table of one export, then its notes."""
    table = Table(title=f"{report['run']} → {report['target']}: {report['destination']}", box=box.SIMPLE)
    table.add_column("field")
    table.add_column("kept", justify="right")
    table.add_column("not kept", justify="right")
    table.add_column("conversions and losses")
    for name, tally in report["fields"].items():
        notes = [n for n in report["notes"] if n["field"] == name]
        text = "; ".join(
            f"{'' if n['kept'] else '[red]NOT KEPT[/red] '}{n['count']:,} {n['what']}: {n['how']}"
            + (f" (e.g. {', '.join(n['examples'])})" if n["examples"] else "")
            for n in notes
        )
        lost = f"[red]{tally['not_kept']:,}[/red]" if tally["not_kept"] else "0"
        table.add_row(name, f"{tally['kept']:,}", lost, text)
    print_table(console(), table)
