"""The pending-upload records' own thread: every record is fsynced off the caller's thread.

``log_artifact`` only appends the record here (memory) and returns. This thread takes what has
queued up, writes each record (temp file, fsync, rename) and fsyncs each uploads directory once
for the lot, and only then hands each job on (to the uploader, for an online run): a record is on
disk before any byte of its upload moves, so an upload never completes before its record exists.
Records have their own thread because an upload can hold the uploader's for minutes.

``drain()`` is what ``finish()``, ``flush()`` and the exit path wait on: once it returns True,
every record of that run is on disk. What a crash between the call and the write loses is only
the records not yet written; the run's ArtifactRecord still rides its batch through the spool
and the ledger, so the collector knows the artifact exists (and that its bytes are pending).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from . import pending_uploads as pending
from .fsync import sync_dir
from .pending_uploads import PendingUpload
from .stats import ShipperStats

log = logging.getLogger("aquarium.agent.record_writer")


@dataclass
class Queued:
    """One artifact's record, waiting to be written; ``upload``: then hand it to the uploader."""

    record: PendingUpload
    stats: ShipperStats
    spool_dir: Path
    upload: bool


class RecordWriter:
    """A thread and its queue of records; ``written(job)`` is called (on it) once each is durable.

    ``owner(spool_dir)`` names the lock file marking an uploading process's records as live; it
    is asked here, not at the call, because the first ask creates the file.
    """

    def __init__(self, written: Callable[[Queued], None], owner: Callable[[Path], str]) -> None:
        self._written = written
        self._owner = owner
        self._queue: list[Queued] = []
        self._writing: list[Queued] = []
        self._cond = threading.Condition()
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="aquarium-upload-records", daemon=True)
        self._thread.start()

    def submit(self, job: Queued) -> bool:
        """Queue ``job``; False once closed (the caller writes it itself then)."""
        with self._cond:
            if self._closing:
                return False
            self._queue.append(job)
            self._cond.notify_all()
            return True

    def drain(self, stats: ShipperStats | None, timeout: float) -> bool:
        """Wait until every record of the run with ``stats`` (None: of every run) is written."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while any(stats is None or job.stats is stats for job in (*self._queue, *self._writing)):
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.5))
            return True

    def close(self, timeout: float) -> bool:
        """Write what is queued, then stop the thread; False if it did not stop within ``timeout``."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closing:
                    self._cond.wait()
                if not self._queue:
                    return  # closing, and everything queued is written
                self._writing, self._queue = self._queue, []
            try:
                self._write(self._writing)
            except Exception:  # a bug must not leave drain() waiting for the rest of the timeout
                log.exception("writing %d pending-upload records failed unexpectedly", len(self._writing))
            finally:
                with self._cond:
                    self._writing = []
                    self._cond.notify_all()

    def _write(self, jobs: list[Queued]) -> None:
        folders: set[Path] = set()
        saved: list[Queued] = []
        for job in jobs:
            if job.upload:
                job.record = replace(job.record, owner=self._owner(job.spool_dir))
            try:
                pending.write(job.spool_dir, job.record, sync_folder=False)
                folders.add(pending.uploads_dir(job.spool_dir))
            except OSError as e:
                record = job.record
                log.warning(
                    "run %s: artifact %r: could not save its upload record in %s (%s); %s",
                    record.run,
                    record.name,
                    pending.uploads_dir(job.spool_dir),
                    e,
                    "it is uploaded from memory only, and lost if the process ends first"
                    if job.upload
                    else "`aquarium sync` cannot upload it",
                )
            saved.append(job)
        for folder in folders:
            sync_dir(folder)
        for job in saved:
            self._written(job)
