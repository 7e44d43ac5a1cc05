"""The uploader: one per process, moving every run's artifacts to the collector.

``log_artifact`` hands it a job (memory only) and returns. Its record writer thread
(record_writer) makes the job's pending-upload record durable, then, for an online run, its
upload thread hashes the file, asks the collector whether it already holds those bytes (link),
and PUTs them if not. Neither holds a lock that ``log()`` needs (``log()`` takes none), and the
heavy work (file reads, sha256, socket writes in 1 MiB pieces) runs with the GIL released. What
cannot be done now is retried with exponential backoff and full jitter; what the collector
refuses is counted failed and logged with the reason. Each job's record stays on disk until the
upload completes, so what is left at exit is completed by `aquarium sync`.

Its lifetime is explicit: ``shared()`` starts it on first use; ``close_shared()`` (the exit path,
after the open runs are finished; a test's teardown) writes every queued record, stops both
threads (an upload in flight stops at its next 1 MiB piece) and releases the lock files, so the
uploads left are `aquarium sync`'s. The next ``shared()`` starts a new one, with no state from
the last.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import artifact_http as protocol
from . import pending_uploads as pending
from .api_locator import ApiLocator
from .artifact_http import ContentChanged, Refused, RetryLater
from .pending_uploads import PendingUpload
from .record_writer import Queued, RecordWriter
from .stats import ShipperStats

log = logging.getLogger("aquarium.agent.uploader")

BACKOFF_FIRST = 0.25
BACKOFF_MAX = 30.0
BACKOFF_WHILE_WAITED_FOR = 0.5  # finish() or sync waits: retry at least this often
REHASH_LIMIT = 3  # a file still changing after this many passes is refused
Progress = Callable[[int], None]


@dataclass
class Attempt:
    """One upload's progress across attempts: the hash once known, and whether it changed."""

    record: PendingUpload
    call_size: int
    call_mtime_ns: int
    hashed: protocol.FileHash | None = None
    changed: bool = False
    rehashes: int = 0


def upload_once(attempt: Attempt, locator: ApiLocator, progress: Progress | None = None) -> str:
    """One try: hash (if not yet), link, PUT. Returns the stored state; raises RetryLater,
    Refused, or ContentChanged (after which the next try hashes again). ``progress`` hears of
    every byte hashed and every byte sent (2 x the size for a file the collector lacks)."""
    record = attempt.record
    endpoint = locator.endpoint(record)
    if attempt.hashed is not None and _stat_of(record.path) != (attempt.hashed.size, attempt.hashed.mtime_ns):
        attempt.hashed = None  # changed since the last try hashed it
    if attempt.hashed is None:
        attempt.hashed = _hash(attempt, progress)
    hashed = attempt.hashed
    try:
        state = protocol.link(endpoint, record.run, record.upload, hashed.sha256, hashed.size, attempt.changed)
        if state is None:
            state = protocol.put(
                endpoint, record.run, record.upload, record.path, hashed.sha256, hashed.size, attempt.changed, progress
            )
    except RetryLater:
        if not locator.fixed and not record.api_url:
            locator.forget(record)
        raise
    except ContentChanged:
        attempt.hashed = None
        attempt.rehashes += 1
        if attempt.rehashes >= REHASH_LIMIT:
            raise Refused(0, "still_changing", f"{record.path} kept changing while it was uploaded") from None
        raise
    return state


def _stat_of(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_size, info.st_mtime_ns


def _hash(attempt: Attempt, progress: Progress | None = None) -> protocol.FileHash:
    record = attempt.record
    try:
        hashed = protocol.hash_file(record.path, progress)
    except FileNotFoundError:
        raise Refused(0, "file_gone", f"{record.path} was removed before it was uploaded") from None
    except OSError as e:
        raise Refused(0, "unreadable", f"{record.path}: {e}") from None
    changed = not hashed.stable or (hashed.size, hashed.mtime_ns) != (attempt.call_size, attempt.call_mtime_ns)
    if changed and not attempt.changed:
        log.warning(
            "run %s: artifact %r: %s changed after it was logged (size %d -> %d); uploading the current "
            "bytes, marked changed",
            record.run,
            record.name,
            record.path,
            attempt.call_size,
            hashed.size,
        )
    attempt.changed = attempt.changed or changed
    return hashed


_jitter = random.Random()  # its own generator: the global one belongs to the program (and its seeds)


def backoff(attempts: int, cap: float = BACKOFF_MAX) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(cap, first * 2**attempts)]."""
    return _jitter.uniform(0.0, min(cap, BACKOFF_FIRST * 2 ** min(attempts, 30)))


@dataclass
class Job:
    attempt: Attempt
    stats: ShipperStats
    spool_dir: Path
    due: float = 0.0
    tries: int = 0
    reasons: set[str] = field(default_factory=set)


class Stopped(Exception):
    """The uploader is closing: the attempt in flight stops (its record stays for sync)."""


class Uploader:
    """The process's record writer and upload threads and their queues (every run's)."""

    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._active: Job | None = None
        self._cond = threading.Condition()
        self._waiters = 0
        self._closing = False
        self._locator = ApiLocator()
        self._locks: dict[Path, pending.OwnerLock] = {}
        self._thread: threading.Thread | None = None  # started by the first online job
        self._records = RecordWriter(self._written, self.owner_name)

    def owner_name(self, spool_dir: Path) -> str:
        """The lock file marking this process's records in ``spool_dir`` as live."""
        with self._cond:
            lock = self._locks.get(spool_dir)
            if lock is None:
                try:
                    lock = self._locks[spool_dir] = pending.OwnerLock(spool_dir)
                except OSError as e:  # the records then have no owner: sync may upload them too (harmless)
                    log.warning("cannot create the uploader's lock file in %s (%s)", spool_dir, e)
                    return ""
            return lock.name

    def submit(self, record: PendingUpload, stats: ShipperStats, spool_dir: Path, upload: bool) -> bool:
        """Queue ``record`` to be written, then (``upload``) uploaded. Memory only; False once closed."""
        return self._records.submit(Queued(record, stats, spool_dir, upload))

    def flush(self, stats: ShipperStats, timeout: float) -> bool:
        """Wait until every pending-upload record of the run with ``stats`` is on disk."""
        return self._records.drain(stats, timeout)

    def wait(self, stats: ShipperStats, timeout: float) -> bool:
        """Wait until the run with ``stats`` has no record left to write and no job left; False
        if some still are."""
        deadline = time.monotonic() + timeout
        if not self._records.drain(stats, timeout):
            return False
        with self._cond:
            self._waiters += 1
            try:
                for job in self._jobs:
                    if job.stats is stats:
                        job.due = min(job.due, time.monotonic())  # retry now
                self._cond.notify_all()
                while self._has_jobs(stats):
                    left = deadline - time.monotonic()
                    if left <= 0 or self._thread is None or not self._thread.is_alive():
                        return False
                    self._cond.wait(min(left, 0.5))
                return True
            finally:
                self._waiters -= 1

    def close(self, timeout: float) -> bool:
        """Write every queued record, stop both threads, release the lock files. False if a thread
        did not stop within ``timeout`` (it is a daemon: it dies with the process)."""
        deadline = time.monotonic() + timeout
        written = self._records.close(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(max(0.0, deadline - time.monotonic()))
        stopped = written and (thread is None or not thread.is_alive())
        with self._cond:
            locks, self._locks = list(self._locks.values()), {}
        for lock in locks:
            lock.close()
        return stopped

    def _written(self, queued: Queued) -> None:
        """On the record writer's thread, once the record is durable: an online run's job is
        uploaded now (also after close started: it stays queued then, the record is sync's)."""
        if not queued.upload:
            return
        record = queued.record
        job = Job(Attempt(record, record.size, record.mtime_ns), queued.stats, queued.spool_dir)
        with self._cond:
            self._jobs.append(job)
            if self._thread is None and not self._closing:
                self._thread = threading.Thread(target=self._loop, name="aquarium-uploader", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def _has_jobs(self, stats: ShipperStats) -> bool:
        return (self._active is not None and self._active.stats is stats) or any(j.stats is stats for j in self._jobs)

    def _next_job(self) -> Job | None:
        """The job due first, once it is due; None when closing."""
        with self._cond:
            while not self._closing:
                now = time.monotonic()
                job = min(self._jobs, key=lambda j: j.due, default=None)
                if job is not None and job.due <= now:
                    self._jobs.remove(job)
                    self._active = job
                    return job
                self._cond.wait(None if job is None else job.due - now)
            return None

    def _loop(self) -> None:
        while (job := self._next_job()) is not None:
            try:
                self._run(job)
            except Stopped:
                pass  # closing: the record stays on disk for `aquarium sync`
            except Exception as e:  # a bug must not end uploading silently
                log.exception("run %s: artifact upload failed unexpectedly", job.attempt.record.run)
                self._retry(job, f"bug: {type(e).__name__}: {e}")
            finally:
                with self._cond:
                    self._active = None
                    self._cond.notify_all()

    def _check_stop(self, _: int) -> None:
        """Called for every 1 MiB hashed or sent: a close stops the attempt there."""
        if self._closing:
            raise Stopped()

    def _run(self, job: Job) -> None:
        record = job.attempt.record
        try:
            state = upload_once(job.attempt, self._locator, self._check_stop)
        except (RetryLater, ContentChanged) as e:
            self._retry(job, str(e))
            return
        except Refused as e:
            job.stats.artifacts_failed += 1
            reason = f"{e.code}: {e.message}" if e.status == 0 else str(e)
            log.error(
                "run %s: artifact %r (%s) was refused and is not uploaded: %s",
                record.run,
                record.name,
                record.path,
                reason,
            )
            _write_quietly(job.spool_dir, replace(record, failed=reason))
            return
        job.stats.artifacts_uploaded += 1
        job.stats.artifact_bytes_uploaded += job.attempt.hashed.size if job.attempt.hashed else 0
        if state == "changed":
            log.warning("run %s: artifact %r is stored marked changed", record.run, record.name)
        finish_record(job.spool_dir, record)

    def _retry(self, job: Job, reason: str) -> None:
        record = job.attempt.record
        cause = reason.split(":", 1)[0]
        if cause not in job.reasons:
            job.reasons.add(cause)
            log.warning(
                "run %s: artifact %r not uploaded yet (%s); retrying in the background", record.run, record.name, reason
            )
        job.tries += 1
        with self._cond:
            cap = BACKOFF_WHILE_WAITED_FOR if self._waiters else BACKOFF_MAX
            job.due = time.monotonic() + backoff(job.tries, cap)
            self._jobs.append(job)


def finish_record(spool_dir: Path, record: PendingUpload) -> None:
    """The upload is complete: its record (and a rendered figure) go."""
    try:
        pending.remove(spool_dir, record.upload)
        if record.owned_file:
            Path(record.path).unlink(missing_ok=True)
    except OSError as e:
        log.warning("run %s: could not remove the finished upload record %s (%s)", record.run, record.upload, e)


def _write_quietly(spool_dir: Path, record: PendingUpload) -> None:
    try:
        pending.write(spool_dir, record)
    except OSError as e:
        log.warning("run %s: could not update the upload record %s (%s)", record.run, record.upload, e)


_shared: Uploader | None = None
_shared_lock = threading.Lock()
CLOSE_TIMEOUT = 10.0


def shared() -> Uploader:
    """The process's uploader, started on first use (again after ``close_shared()``)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Uploader()
        return _shared


def close_shared(timeout: float = CLOSE_TIMEOUT) -> bool:
    """Close the process's uploader, if one started (see the module docstring). False if its
    threads did not stop within ``timeout``."""
    global _shared
    with _shared_lock:
        work, _shared = _shared, None
    return work.close(timeout) if work is not None else True


def _forget_after_fork() -> None:
    """A forked child has no uploader threads: it starts its own if it logs artifacts. Its copies
    of the parent's lock files are closed (the parent's locks stay held, and stay on disk)."""
    global _shared, _shared_lock
    inherited, _shared, _shared_lock = _shared, None, threading.Lock()
    if inherited is not None:
        for lock in list(inherited._locks.values()):
            lock.close(remove=False)


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_after_fork)
