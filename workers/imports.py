"""Importing other trackers' runs from Python: what `aquarium import` does, as functions.

    from aquarium.workers import import_runs
    outcomes = import_runs("tensorboard", "runs/", redis_url="redis://...", data_dir="aquarium_data")
    outcomes = import_runs("seed", "neural_experiments/", sync=True, data_dir="aquarium_data")

Queued (the default), each source run is one RQ job that an `aquarium worker` runs: it sends the
run's batches to the stream and waits for a collector to commit them. ``sync=True`` imports in
this process into the spool under ``data_dir`` and ingests it: no Redis, no worker. Either way
importing twice leaves one copy, and every outcome carries the kept/not-kept report.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from rq.job import Job

from .progress import Progress
from .queue import JOB_TIMEOUT, Outcome, enqueue_import, wait_for

LOCAL_SOURCES = ("tensorboard", "seed", "wandb")  # locations that are paths (resolved before enqueueing)


@dataclass
class SyncImport:
    """What an in-process import did: one outcome per source run, then what the store took."""

    outcomes: list[Outcome]
    stored_batches: int = 0
    stored_points: int = 0
    duplicates: int = 0
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (spool file, reason)


def source_runs(source: str, location: str, options: Mapping[str, Any] | None = None) -> tuple[str, list[str]]:
    """The location as the jobs see it (paths made absolute) and the refs of its runs."""
    from .sources import get_source

    if source in LOCAL_SOURCES:
        location = str(Path(location).resolve())
    return location, get_source(source).list_runs(location, dict(options or {}))


def enqueue_imports(
    connection: redis.Redis,
    source: str,
    location: str,
    *,
    api: str,
    prefix: str = "aquarium",
    timeout: int = JOB_TIMEOUT,
    options: Mapping[str, Any] | None = None,
) -> list[Job]:
    """One import job per run at ``location``; ``api`` (a data dir or the API URL) is where a job
    checks whether the run was imported before from other content."""
    location, refs = source_runs(source, location, options)
    job_options = {**(options or {}), "prefix": prefix, "api": api}
    return [enqueue_import(connection, source, location, ref, job_options, timeout=timeout) for ref in refs]


def import_here(
    source: str,
    location: str,
    data_dir: str | Path,
    options: Mapping[str, Any] | None = None,
    progress_of: Callable[[str], Progress] | None = None,
) -> SyncImport:
    """Import every run at ``location`` in this process, through the spool under ``data_dir``."""
    from aquarium.collector import Store

    from .progress import no_progress
    from .sources.delivery import SpoolDelivery
    from .sources.importer import run_import

    data_dir = Path(data_dir)
    location, refs = source_runs(source, location, options)
    delivery = SpoolDelivery(data_dir)
    api = str(data_dir) if (data_dir / "aquarium.db").exists() else None
    done = SyncImport([])
    for ref in refs:
        step = progress_of(ref) if progress_of is not None else no_progress
        try:
            report = run_import(source, location, ref, dict(options or {}), delivery, step, api)
            done.outcomes.append(Outcome("", "aquarium", ref, "finished", report=report))
        except Exception as e:  # as a worker would: the reason is kept, the next run goes on
            done.outcomes.append(Outcome("", "aquarium", ref, "failed", error=f"{type(e).__name__}: {e}"))
    if any(o.report is not None for o in done.outcomes):
        with Store(data_dir) as store:
            ingested = store.ingest_spool(include_live=False)
        done.stored_batches, done.stored_points = ingested.stored, ingested.points
        done.duplicates, done.rejected = ingested.duplicates, [(str(p), r) for p, r in ingested.rejected]
    return done


def import_runs(
    source: str,
    location: str,
    *,
    data_dir: str | Path = "aquarium_data",
    redis_url: str = "redis://127.0.0.1:6379/0",
    api: str | None = None,
    prefix: str = "aquarium",
    sync: bool = False,
    wait: bool = True,
    timeout: float | None = None,
    **options: Any,
) -> list[Outcome] | list[Job]:
    """Import every run of ``source`` ("tensorboard", "mlflow", "wandb", "seed") at ``location``:
    the outcomes (reports), or with ``wait=False`` the queued jobs."""
    if sync:
        return import_here(source, location, data_dir, options).outcomes
    connection = redis.Redis.from_url(redis_url)
    jobs = enqueue_imports(connection, source, location, api=api or str(Path(data_dir).resolve()), prefix=prefix,
                           options=options)  # fmt: skip
    return wait_for(jobs, timeout=timeout) if wait else jobs
