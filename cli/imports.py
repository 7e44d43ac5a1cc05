"""`aquarium import tensorboard|mlflow|wandb|seed PATH_OR_URI`: other trackers' runs into Aquarium.

Each source run is one RQ job (an `aquarium worker` runs it) that sends the run's batches to the
stream and waits for a collector to commit them; `--sync` imports in this process instead,
through the spool under --data-dir, which is then ingested. Importing twice leaves one copy.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from .options import api_url_option, data_dir_option, plural, redis_options, say

F = TypeVar("F", bound=Callable[..., Any])
LOCAL_SOURCES = ("tensorboard", "seed", "wandb")  # locations that are paths (resolved before enqueueing)


def _common(f: F) -> F:
    for decorate in (
        click.argument("location", metavar="PATH_OR_URI"),
        data_dir_option,
        api_url_option,
        redis_options(),
        click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the jobs and print reports."),
        click.option("--sync", is_flag=True, help="Import in this process through the spool: no Redis, no worker."),
        click.option("--timeout", type=int, default=3600, show_default=True, help="Seconds one job may run."),
    ):
        f = decorate(f)
    return f


@click.group("import")
def import_group() -> None:
    """Import runs from TensorBoard, MLflow, W&B offline dirs or the seed's directory format (a report per run)."""


@import_group.command("tensorboard")
@_common
def tensorboard_command(**kw: Any) -> None:
    """Import every run (a directory of *tfevents* files) under PATH."""
    _import("tensorboard", {}, **kw)


@import_group.command("mlflow")
@_common
@click.option("--experiment", default=None, help="Only this MLflow experiment's runs.")
def mlflow_command(experiment: str | None, **kw: Any) -> None:
    """Import the runs of the MLflow tracking URI (a server, or a local mlruns store)."""
    _import("mlflow", {"experiment": experiment} if experiment else {}, **kw)


@import_group.command("wandb")
@_common
def wandb_command(**kw: Any) -> None:
    """Import W&B offline run dirs: PATH is a wandb/ dir, its parent, or one offline-run-* dir."""
    _import("wandb", {}, **kw)


@import_group.command("seed")
@_common
def seed_command(**kw: Any) -> None:
    """Import the seed tracker's <name>_<id>/ dirs: PATH is their base dir (neural_experiments/) or one of them."""
    _import("seed", {}, **kw)


def _import(
    source_name: str,
    options: dict[str, Any],
    location: str,
    data_dir: Path,
    api_url: str | None,
    redis_url: str,
    prefix: str,
    wait: bool,
    sync: bool,
    timeout: int,
) -> None:
    from aquarium.workers.sources import get_source

    if source_name in LOCAL_SOURCES:
        location = str(Path(location).resolve())
    refs = get_source(source_name).list_runs(location, options)
    say(f"{plural(len(refs), 'run')} to import from {source_name} {location}")
    outcomes: list[Any] | None
    if sync:
        outcomes = _run_here(source_name, location, refs, options, data_dir)
    else:
        api = api_url or str(data_dir.resolve())
        outcomes = _run_queued(source_name, location, refs, {**options, "prefix": prefix, "api": api}, redis_url,
                               wait, timeout)  # fmt: skip
        if outcomes is None:
            return
    from .export import print_report

    failed = 0
    for o in outcomes:
        if o.report is not None:
            print_report({**o.report, "run": f"{source_name} {o.report['source_run']}",
                          "destination": f"run {o.report['run']} ({o.report['delivery']})"})  # fmt: skip
        else:
            failed += 1
            click.echo(f"{o.run} → aquarium: {o.status}: {o.error}", err=True)
    if failed:
        raise click.ClickException(f"{plural(failed, 'import')} of {len(outcomes)} failed")


def _run_here(source_name: str, location: str, refs: list[str], options: dict[str, Any], data_dir: Path) -> list[Any]:
    from aquarium.collector import Store
    from aquarium.workers import Outcome
    from aquarium.workers.progress_bar import JobBars
    from aquarium.workers.sources.delivery import SpoolDelivery
    from aquarium.workers.sources.importer import run_import

    outcomes = []
    delivery = SpoolDelivery(data_dir)
    api = str(data_dir) if (data_dir / "aquarium.db").exists() else None
    with JobBars([]) as bars:
        for ref in refs:
            task = bars.progress.add_task(f"{ref} → aquarium", total=None, state="")

            def step(done: int, total: int, phase: str, task: Any = task) -> None:
                bars.progress.update(task, completed=done, total=total or None, state=phase)

            try:
                report = run_import(source_name, location, ref, options, delivery, step, api)
                outcomes.append(Outcome("", "aquarium", ref, "finished", report=report))
            except Exception as e:  # as a worker would: the reason is shown, the next run goes on
                outcomes.append(Outcome("", "aquarium", ref, "failed", error=f"{type(e).__name__}: {e}"))
    if any(o.report is not None for o in outcomes):
        with Store(data_dir) as store:
            ingested = store.ingest_spool(include_live=False)
        say(f"stored {plural(ingested.stored, 'new batch', 'new batches')} ({plural(ingested.points, 'point')}), "
            f"{plural(ingested.duplicates, 'duplicate')} dropped, in {data_dir}")  # fmt: skip
        for path, reason in ingested.rejected:
            click.echo(f"{path}: {reason}", err=True)
        if ingested.rejected:
            raise click.ClickException(f"{plural(len(ingested.rejected), 'batch', 'batches')} rejected by the store")
    return outcomes


def _run_queued(
    source_name: str,
    location: str,
    refs: list[str],
    options: dict[str, Any],
    redis_url: str,
    wait: bool,
    timeout: int,
) -> list[Any] | None:
    import redis

    from aquarium.workers import wait_for
    from aquarium.workers.progress_bar import JobBars
    from aquarium.workers.queue import enqueue_import

    connection = redis.Redis.from_url(redis_url)
    jobs = [enqueue_import(connection, source_name, location, ref, options, timeout=timeout) for ref in refs]
    if not wait:
        for job in jobs:
            say(f"{job.id}  {job.meta.get('run')} → aquarium  {job.get_status().value}")
        return None
    with JobBars(jobs) as bars:
        return wait_for(jobs, bars.update)
