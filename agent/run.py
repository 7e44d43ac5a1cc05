"""A run: the training-side API. Every ``log_*`` validates, appends to memory and returns.

The current run for the module-level functions lives in a ContextVar. Nothing starts (threads,
atexit, excepthook) until the first ``init()``.
"""

from __future__ import annotations

import logging
import platform
import sys
import threading
import time
from collections.abc import Iterable, Mapping
from contextvars import ContextVar
from dataclasses import replace
from types import TracebackType
from typing import Any

from . import env
from .errors import InvalidValueError, NoActiveRunError, RunFinishedError
from .gitinfo import git_info
from .identity import Identity, resolve
from .run_artifacts import RunArtifacts
from .settings import AgentSettings
from .shipper import FinishReport, Shipper, ShipperStats
from .shutdown import process_end
from .statuses import COMPLETED, FAILED, INTERRUPTED, RUNNING, TERMINAL_STATUSES
from .values import (
    MAX_STEP,
    MIN_STEP,
    coerce_metrics,
    coerce_step,
    coerce_tags,
    encodable_text,
    flatten_params,
    validate_key_set,
    validate_name,
)
from .wire import ArtifactRecord

logger = logging.getLogger("aquarium.agent.run")

_current: ContextVar["Run | None"] = ContextVar("aquarium_current_run", default=None)
_now = time.time
_thread_id = threading.get_ident


class Run:
    """One process's handle on a run; all ranks of a job share the run id."""

    def __init__(
        self,
        identity: Identity,
        settings: AgentSettings,
        *,
        name: str,
        experiment: str,
        config: Mapping[str, Any] | None = None,
        tags: Mapping[str, Any] | Iterable[str] | None = None,
    ) -> None:
        self.identity = identity
        self.settings = settings
        self.name = validate_name(name, "run name")
        self.experiment = validate_name(experiment, "experiment name")
        self.status = RUNNING
        self._next_step = 0
        self._finished = False
        self._report: FinishReport | None = None
        meta = {
            "name": self.name,
            "experiment": self.experiment,
            "host": identity.host,
            "pid": identity.pid,
            "world_size": identity.world_size,
            "local_rank": identity.local_rank,
            "started_at": _now(),
            "python": platform.python_version(),
            "argv": [encodable_text(str(a), 500) for a in sys.argv[:50]],
            "git": git_info(),
        }
        self._shipper = Shipper(identity, settings, meta)
        queue = self._shipper.points
        self._key_sets = queue.ids_by_keys  # read here, written by register() from this thread
        self._owner_thread = _thread_id()
        self._queued = queue.key_set_ids
        # ~64 bytes a queued step (4 values): the shipper drains it every flush_interval
        self._queue_limit = max(settings.max_memory_bytes // 64, 10_000)
        self._overflow_lock = threading.Lock()
        self._push_values, self._push_step = queue.values.extend, queue.steps.append
        self._push_time, self._push_key_set = queue.times.append, queue.key_set_ids.append
        self._event = self._shipper.events.append
        self._artifacts = RunArtifacts(identity, settings, self._shipper.stats, self._event)
        self._event(("status", (self.status, _now())))
        if config:
            self.log_params(config)
        if tags:
            self.set_tags(tags)
        self._shipper.start()

    # -- identity ------------------------------------------------------------------------------
    @property
    def id(self) -> str:
        return self.identity.run_id

    @property
    def rank(self) -> int:
        return self.identity.rank

    @property
    def stats(self) -> ShipperStats:
        return self._shipper.stats

    @property
    def finished(self) -> bool:
        """True from the moment ``finish()`` starts: nothing more can be logged."""
        return self._finished

    # -- logging -------------------------------------------------------------------------------
    def log(self, metrics: Mapping[str, Any], step: int | None = None) -> None:
        """Record numeric metrics at ``step`` (default: previous step + 1). Never blocks.

        Steps are int64; at most MAX_KEYS_PER_CALL (10,000) names of up to 250 characters.
        Raises InvalidValueError / InvalidNameError for bad input, naming the key, before
        anything is recorded.
        """
        if self._finished:
            raise RunFinishedError(self.id)
        if step is None:
            step = self._next_step
            if step > MAX_STEP:
                raise InvalidValueError("step", step, "the default step (last + 1) must fit in a signed 64-bit integer")
        elif type(step) is not int or not MIN_STEP <= step <= MAX_STEP:
            step = coerce_step(step)  # raises for anything that is not an int64
        if type(metrics) is not dict:
            metrics = coerce_metrics(metrics)
        for value in metrics.values():
            if type(value) is not float:
                metrics = coerce_metrics(metrics)
                break
        key_set = self._key_sets.get(tuple(metrics))
        if key_set is None:
            key_set = self._shipper.points.register(validate_key_set(tuple(metrics)))
        # Everything is valid from here on: nothing above has appended anything.
        self._next_step = step + 1
        if len(self._queued) >= self._queue_limit:
            self._overflow(len(metrics))
            return
        if _thread_id() != self._owner_thread:
            # The queue's four appends must not interleave with another thread's: one atomic append.
            if len(self._shipper.other_threads) >= self._queue_limit:  # bounded like the owner's queue
                self._overflow(len(metrics))
                return
            self._shipper.other_threads.append(
                (step, _now(), self._shipper.points.key_sets[key_set], tuple(metrics.values()))
            )
            return
        try:
            self._push_values(metrics.values())  # values first, key-set id last: see PointQueue
            self._push_step(step)
            self._push_time(_now())
            self._push_key_set(key_set)
        except BaseException:  # a KeyboardInterrupt between two appends: the point is not logged
            if self._shipper.points.drop_partial():
                self._next_step = step
            raise

    log_metrics = log

    def _overflow(self, points: int) -> None:
        """The shipper fell this far behind (a loop that only logs): count the drop, never block."""
        stats = self._shipper.stats
        with self._overflow_lock:  # several logging threads may overflow at once
            if not stats.dropped_at_queue:
                logger.warning(
                    "run %s: more than %d steps are waiting to be shipped; dropping new points "
                    "(counted in run.stats.dropped_points) until the shipper catches up",
                    self.id,
                    self._queue_limit,
                )
            stats.dropped_at_queue += points

    def log_params(self, params: Mapping[str, Any]) -> None:
        """Record hyperparameters; nested dicts become dotted names. Later values win.

        Values nest at most MAX_PARAM_DEPTH (16) levels; a str value, or the text of a list, is
        at most MAX_TEXT_CHARS (65,536) characters; at most 10,000 names a call.
        """
        self._check_open()
        self._event(("params", flatten_params(params)))

    log_hyperparameters = log_params

    def set_tags(self, tags: Mapping[str, Any] | Iterable[str]) -> None:
        """Attach tags: a mapping of name -> value, or names alone.

        Values are stored as text of at most MAX_TEXT_CHARS (65,536) characters; at most 10,000
        tags a call.
        """
        self._check_open()
        self._event(("tags", coerce_tags(tags)))

    def set_status(self, status: str) -> None:
        """Set the run's status (running, completed, failed, ... or your own word)."""
        self._check_open()
        self.status = validate_name(status, "status")
        self._event(("status", (status, _now())))

    # -- artifacts -----------------------------------------------------------------------------
    def log_artifact(
        self, path: Any, name: str | None = None, step: int | None = None, meta: Mapping[str, Any] | None = None
    ) -> ArtifactRecord:
        """Record a file (default name: its basename); the bytes are uploaded in the background.

        Raises InvalidValueError / InvalidNameError at the call, before anything is recorded, for
        a missing file, a directory, a bad name, step or meta. Changing the file before its upload
        finishes is detected: the upload is then marked changed, never stored as the same file.
        """
        self._check_open()
        return self._artifacts.log_file(path, name, "file", step, meta)

    def log_model(
        self,
        path: Any,
        framework: str | None = None,
        name: str | None = None,
        step: int | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> ArtifactRecord:
        """Record a model file (kind "model"), with the framework it is for ("pytorch", ...)."""
        self._check_open()
        return self._artifacts.log_file(path, name, "model", step, meta, framework)

    def log_figure(
        self, figure: Any, name: str, step: int | None = None, meta: Mapping[str, Any] | None = None
    ) -> ArtifactRecord:
        """Record a matplotlib Figure or a PIL Image, rendered now in the format of ``name``'s
        extension (PNG without one)."""
        self._check_open()
        return self._artifacts.log_figure(figure, name, step, meta)

    def _check_open(self) -> None:
        if self._finished:
            raise RunFinishedError(self.id)

    # -- ending --------------------------------------------------------------------------------
    def flush(self, timeout: float | None = None) -> bool:
        """Hand everything logged so far to Redis or the spool, and every pending-upload record to
        disk; False if that took too long."""
        timeout = self.settings.finish_timeout if timeout is None else timeout
        records = self._artifacts.flush(timeout)
        return self._shipper.flush(timeout) and records

    def finish(self, status: str | None = None, timeout: float | None = None) -> FinishReport:
        """Ship what is left, wait a bounded time, and report where everything is.

        Points the collector has not committed when this returns are kept in a spool file that
        `aquarium up`, the store or `aquarium sync` picks up; so are the pending-upload records
        of artifacts not uploaded yet (written before this returns, whatever the timeout).
        """
        timeout = self.settings.finish_timeout if timeout is None else timeout
        if self._finished:
            # Finished, or finishing in a frame a signal interrupted (or in another thread):
            # wait, within this call's timeout, for that close.
            return self._report or self._shipper.close(timeout, self.settings.commit_wait)
        if status is not None:
            self.set_status(status)
        elif self.status not in TERMINAL_STATUSES:
            self.set_status(COMPLETED)
        self._finished = True
        deadline = time.monotonic() + timeout
        self._artifacts.flush(timeout)  # first: the records are local writes, the shipper may wait on Redis
        report = self._shipper.close(max(0.0, deadline - time.monotonic()), self.settings.commit_wait)
        self._artifacts.wait(max(0.0, deadline - time.monotonic()))
        stats = self.stats
        report = self._report = replace(
            report,
            artifacts_logged=stats.artifacts_logged,
            artifacts_uploaded=stats.artifacts_uploaded,
            artifacts_pending=stats.artifacts_pending,
            artifacts_failed=stats.artifacts_failed,
        )
        process_end.untrack(self)
        if _current.get() is self:
            _current.set(None)
        if report.spooled_files:
            logger.info(
                "run %s: %d batches not yet committed are kept in %s",
                self.id,
                report.last_seq - report.committed_seq,
                ", ".join(report.spooled_files),
            )
        if report.artifacts_pending:
            logger.warning(
                "run %s: %d of %d artifacts are not uploaded yet; `aquarium sync` uploads them (records in %s)",
                self.id,
                report.artifacts_pending,
                report.artifacts_logged,
                self._artifacts.uploads_dir,
            )
        if report.dropped_points:
            logger.warning("run %s: %d points were dropped (see earlier errors)", self.id, report.dropped_points)
        if report.unconfirmed_points:
            logger.warning(
                "run %s: %d points reached Redis but not the spool and were never confirmed committed",
                self.id,
                report.unconfirmed_points,
            )
        return report

    def __enter__(self) -> "Run":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.finish()
        elif issubclass(exc_type, KeyboardInterrupt):
            self.finish(INTERRUPTED)
        else:
            self.finish(FAILED)

    def __repr__(self) -> str:
        return f"<Run {self.id} rank={self.rank} name={self.name!r} status={self.status}>"


def init(
    experiment: str | None = None,
    name: str | None = None,
    config: Mapping[str, Any] | None = None,
    *,
    run_id: str | None = None,
    rank: int | None = None,
    world_size: int | None = None,
    tags: Mapping[str, Any] | Iterable[str] | None = None,
    **settings: Any,
) -> Run:
    """Start (or, with the same run id on another rank, join) a run and make it current.

    Returns at once: connecting to Redis happens in the background, and with Redis unreachable
    the run spools to disk under the data dir. Extra keyword arguments are AgentSettings fields
    (``redis_url``, ``mode``, ``data_dir``, ...).
    """
    identity = resolve(run_id, rank, world_size)
    run = Run(
        identity,
        AgentSettings.from_env(**settings),
        name=name or env.RUN_NAME.get() or identity.run_id,
        experiment=experiment or env.EXPERIMENT.get(),
        config=config,
        tags=tags,
    )
    process_end.track(run)
    _current.set(run)
    return run


def current_run() -> Run:
    run = _current.get()
    if run is None:
        raise NoActiveRunError()
    return run


def log(metrics: Mapping[str, Any], step: int | None = None) -> None:
    current_run().log(metrics, step)


def log_params(params: Mapping[str, Any]) -> None:
    current_run().log_params(params)


def set_status(status: str) -> None:
    current_run().set_status(status)


def set_tags(tags: Mapping[str, Any] | Iterable[str]) -> None:
    current_run().set_tags(tags)


def log_artifact(
    path: Any, name: str | None = None, step: int | None = None, meta: Mapping[str, Any] | None = None
) -> ArtifactRecord:
    return current_run().log_artifact(path, name, step, meta)


def log_model(
    path: Any,
    framework: str | None = None,
    name: str | None = None,
    step: int | None = None,
    meta: Mapping[str, Any] | None = None,
) -> ArtifactRecord:
    return current_run().log_model(path, framework, name, step, meta)


def log_figure(
    figure: Any, name: str, step: int | None = None, meta: Mapping[str, Any] | None = None
) -> ArtifactRecord:
    return current_run().log_figure(figure, name, step, meta)


def finish(status: str | None = None) -> FinishReport:
    return current_run().finish(status)
