"""The job functions RQ runs, importable by path (``aquarium.workers.jobs.export_run``)."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from aquarium.agent.errors import RunNotFoundError

from .progress import MetaProgress, Progress, no_progress
from .targets import ExportError, get_target

log = logging.getLogger("aquarium.workers.jobs")


def run_export(
    target_name: str, run_id: str, source: str, options: Mapping[str, Any], progress: Progress = no_progress
) -> dict[str, Any]:
    """Export one run read through ``Api(source)`` (a data dir or the HTTP API URL); the report."""
    from aquarium.collector import Api

    target = get_target(target_name)
    try:
        with Api(source) as api:
            report = target.export(api, run_id, options, progress)
    except RunNotFoundError as e:
        raise ExportError(f"no run {run_id!r} in {source}", permanent=True) from e
    log.info("exported %s to %s: %s", run_id, target_name, report.destination)
    return report.to_dict()


def export_run(target_name: str, run_id: str, source: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The RQ job: progress into ``job.meta``; a permanent failure (unknown run, bad options, a
    directory that cannot be written) is not retried."""
    from rq import get_current_job

    job = get_current_job()
    progress = MetaProgress(job) if job is not None else None
    try:
        return run_export(target_name, run_id, source, options, progress or no_progress)
    except ExportError as e:
        if e.permanent and job is not None:
            job.retries_left = 0
        raise
    finally:
        if progress is not None:
            progress.finish()


def import_run(source_name: str, location: str, ref: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """The RQ import job: the batches go to the stream of the job's own Redis (``options["prefix"]``)
    and the job waits for a collector's commit; a source that cannot be read is not retried."""
    from rq import get_current_job

    from aquarium.agent.redis_keys import RedisKeys

    from .sources.base import SourceError
    from .sources.delivery import COMMIT_WAIT, StreamDelivery
    from .sources.importer import run_import

    job = get_current_job()
    if job is None:
        raise SourceError("import_run runs as an RQ job; run_import() imports in this process")
    progress = MetaProgress(job)
    delivery = StreamDelivery(
        job.connection,
        RedisKeys(str(options.get("prefix") or "aquarium")),
        float(options.get("commit_wait") or COMMIT_WAIT),
    )
    try:
        return run_import(source_name, location, ref, options, delivery, progress, options.get("api"))
    except SourceError as e:
        if e.permanent:
            job.retries_left = 0
        raise
    finally:
        progress.finish()
