"""Enqueueing exports and imports on RQ, one job per request, and waiting for them.

The job id is derived from (target, run, options), so enqueueing an export already queued or
running returns that job instead of starting a second. Failures are retried
(``RETRY_INTERVALS``, seconds), except permanent ones (see ``jobs.export_run``).
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from rq import Queue, Retry
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from aquarium.agent.redis_keys import EXPORT_QUEUE

RETRY_INTERVALS = (1, 5, 15)
JOB_TIMEOUT = 3600  # seconds one export may run
RESULT_TTL = 7 * 24 * 3600
ACTIVE = (JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED)


def export_queue(connection: redis.Redis) -> Queue:
    return Queue(EXPORT_QUEUE, connection=connection)


def export_job_id(target: str, run_id: str, options: Mapping[str, Any]) -> str:
    text = json.dumps([target, run_id, dict(options)], sort_keys=True, default=str)
    return f"export-{target}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def enqueue_export(
    connection: redis.Redis,
    target: str,
    run_id: str,
    source: str,
    options: Mapping[str, Any],
    *,
    retry_intervals: Sequence[int] = RETRY_INTERVALS,
    timeout: int = JOB_TIMEOUT,
) -> Job:
    """The job exporting ``run_id``: the one already queued or running, else a new one."""
    from .targets import get_target

    get_target(target)  # an unknown target fails here, not in a worker
    return _enqueue_once(
        connection,
        export_job_id(target, run_id, options),
        "aquarium.workers.jobs.export_run",
        (target, run_id, source, dict(options)),
        f"export {run_id} to {target}",
        {"target": target, "run": run_id},
        retry_intervals,
        timeout,
    )


def import_job_id(source: str, location: str, ref: str, options: Mapping[str, Any]) -> str:
    text = json.dumps([source, location, ref, dict(options)], sort_keys=True, default=str)
    return f"import-{source}-{hashlib.sha256(text.encode()).hexdigest()[:24]}"


def enqueue_import(
    connection: redis.Redis,
    source: str,
    location: str,
    ref: str,
    options: Mapping[str, Any],
    *,
    retry_intervals: Sequence[int] = RETRY_INTERVALS,
    timeout: int = JOB_TIMEOUT,
) -> Job:
    """The job importing run ``ref`` of ``location``: the one already queued or running, else a new one."""
    from .sources import get_source

    get_source(source)  # an unknown source fails here, not in a worker
    return _enqueue_once(
        connection,
        import_job_id(source, location, ref, options),
        "aquarium.workers.jobs.import_run",
        (source, location, ref, dict(options)),
        f"import {ref} from {source}",
        {"target": "aquarium", "run": ref, "source": source},
        retry_intervals,
        timeout,
    )


def _enqueue_once(
    connection: redis.Redis,
    job_id: str,
    function: str,
    args: tuple[Any, ...],
    description: str,
    meta: dict[str, Any],
    retry_intervals: Sequence[int],
    timeout: int,
) -> Job:
    lock = connection.lock(f"{EXPORT_QUEUE}:enqueue:{job_id}", timeout=10, blocking_timeout=10)
    with lock:
        try:
            job = Job.fetch(job_id, connection=connection)
            if job.get_status(refresh=True) in ACTIVE:
                return job
        except NoSuchJobError:
            pass
        return export_queue(connection).enqueue(
            function,
            args=args,
            job_id=job_id,
            retry=Retry(max=len(retry_intervals), interval=list(retry_intervals)) if retry_intervals else None,
            job_timeout=timeout,
            result_ttl=RESULT_TTL,
            failure_ttl=RESULT_TTL,
            description=description,
            meta={**meta, "done": 0, "total": 0, "phase": "queued"},
        )


@dataclass
class Outcome:
    """How one job ended: its report, or why it failed."""

    job_id: str
    target: str
    run: str
    status: str
    report: dict[str, Any] | None = None
    error: str | None = None


def outcome(job: Job) -> Outcome:
    status = job.get_status(refresh=True)
    target, run = str(job.meta.get("target", "")), str(job.meta.get("run", ""))
    if status == JobStatus.FINISHED:
        return Outcome(job.id, target, run, "finished", report=job.return_value())
    error = None
    if status == JobStatus.FAILED:
        result = job.latest_result()
        text = (result.exc_string if result is not None else None) or "unknown error"
        error = text.strip().splitlines()[-1]
    return Outcome(job.id, target, run, str(status.value if status else "missing"), error=error)


def wait_for(
    jobs: Sequence[Job],
    on_progress: Callable[[Job], None] | None = None,
    poll: float = 0.2,
    timeout: float | None = None,
) -> list[Outcome]:
    """Block until every job finished or failed (retries included); ``on_progress`` sees each poll."""
    deadline = None if timeout is None else time.monotonic() + timeout
    pending = list(jobs)
    while pending:
        still = []
        for job in pending:
            status = job.get_status(refresh=True)
            job.meta = job.get_meta(refresh=True)
            if on_progress is not None:
                on_progress(job)
            if status not in (JobStatus.FINISHED, JobStatus.FAILED, JobStatus.STOPPED, JobStatus.CANCELED, None):
                still.append(job)
        pending = still
        if pending:
            if deadline is not None and time.monotonic() > deadline:
                break
            time.sleep(poll)
    return [outcome(job) for job in jobs]
