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
    from aquarium.workers.imports import source_runs

    location, refs = source_runs(source_name, location, options)
    say(f"{plural(len(refs), 'run')} to import from {source_name} {location}")
    outcomes: list[Any] | None
    if sync:
        outcomes = _run_here(source_name, location, options, data_dir)
    else:
        api = api_url or str(data_dir.resolve())
        outcomes = _run_queued(source_name, location, options, api, redis_url, prefix, wait, timeout)
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


def _run_here(source_name: str, location: str, options: dict[str, Any], data_dir: Path) -> list[Any]:
    from aquarium.workers.imports import import_here
    from aquarium.workers.progress_bar import JobBars

    with JobBars([]) as bars:

        def progress_of(ref: str) -> Any:
            task = bars.progress.add_task(f"{ref} → aquarium", total=None, state="")

            def step(done: int, total: int, phase: str) -> None:
                bars.progress.update(task, completed=done, total=total or None, state=phase)

            return step

        done = import_here(source_name, location, data_dir, options, progress_of)
    if any(o.report is not None for o in done.outcomes):
        stored = plural(done.stored_batches, "new batch", "new batches")
        say(f"stored {stored} ({plural(done.stored_points, 'point')}), "
            f"{plural(done.duplicates, 'duplicate')} dropped, in {data_dir}")  # fmt: skip
        for path, reason in done.rejected:
            click.echo(f"{path}: {reason}", err=True)
        if done.rejected:
            raise click.ClickException(f"{plural(len(done.rejected), 'batch', 'batches')} rejected by the store")
    return done.outcomes


def _run_queued(
    source_name: str,
    location: str,
    options: dict[str, Any],
    api: str,
    redis_url: str,
    prefix: str,
    wait: bool,
    timeout: int,
) -> list[Any] | None:
    import redis

    from aquarium.workers import wait_for
    from aquarium.workers.imports import enqueue_imports
    from aquarium.workers.progress_bar import JobBars

    connection = redis.Redis.from_url(redis_url)
    jobs = enqueue_imports(connection, source_name, location, api=api, prefix=prefix, timeout=timeout, options=options)
    if not wait:
        for job in jobs:
            say(f"{job.id}  {job.meta.get('run')} → aquarium  {job.get_status().value}")
        return None
    with JobBars(jobs) as bars:
        return wait_for(jobs, bars.update)
