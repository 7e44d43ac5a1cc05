"""A run's artifacts: checked at the call, recorded in the next batch, uploaded in the background.

``log_artifact`` / ``log_model`` / ``log_figure`` on a Run come here once the run is known to be
open. Everything that can be wrong raises before anything is written (artifact_call); then the
ArtifactRecord joins the run's events (it ships with the next batch, through the spool and the
ledger like everything else) and the job goes to the process's uploader, in memory: like every
``log_*`` call, nothing slow happens on the caller's thread. (A figure is the exception: it is
rendered at the call, since the object may change as soon as the call returns.) The uploader's
record writer thread fsyncs the pending-upload record, then uploads (offline: only the record;
`aquarium sync` uploads then).

Durability: ``flush()`` and ``finish()`` (also at exit and on SIGTERM) return only once every
record of the run is on disk, so a process that ends after them, even by SIGKILL, leaves its
pending uploads to `aquarium sync`. A crash between the call and the record's write (a few
milliseconds) loses that record only: the ArtifactRecord still rides the batch, so the
collector lists the artifact as pending.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from . import artifact_call, env, pending_uploads, uploader
from .artifact_names import validate_artifact_name
from .identity import Identity
from .settings import AgentSettings
from .stats import ShipperStats
from .values import coerce_step
from .wire import ArtifactRecord

RECORDS_MIN_WAIT = 30.0  # records are local disk writes: waited for even past a short finish timeout


class RunArtifacts:
    def __init__(
        self,
        identity: Identity,
        settings: AgentSettings,
        stats: ShipperStats,
        event: Callable[[tuple[str, Any]], None],
    ) -> None:
        self._identity = identity
        self._settings = settings
        self._stats = stats
        self._event = event
        self._lock = threading.Lock()  # log_artifact() from several threads; log() never takes it
        self._uploaders: list[uploader.Uploader] = []  # those this run's jobs went to (one, unless one closed)

    @property
    def uploads_dir(self) -> Path:
        return pending_uploads.uploads_dir(self._settings.spool_dir)

    def log_file(
        self, path: Any, name: str | None, kind: str, step: Any, meta: Mapping[str, Any] | None, framework: Any = None
    ) -> ArtifactRecord:
        prepared = artifact_call.check_file(path)  # first: "is a directory" says more than a bad basename
        name = validate_artifact_name(artifact_call.default_name(path) if name is None else name)
        checked_framework = artifact_call.check_framework(framework)
        checked_step = None if step is None else coerce_step(step)
        checked_meta = artifact_call.check_meta(meta)
        upload = artifact_call.new_upload_id()
        record = artifact_call.build_record(
            upload, name, kind, prepared.size, checked_step, checked_framework, checked_meta
        )
        self._queue(record, prepared, owned_file=False)
        return record

    def log_figure(self, figure: Any, name: str, step: Any, meta: Mapping[str, Any] | None) -> ArtifactRecord:
        name = validate_artifact_name(name)
        checked_step = None if step is None else coerce_step(step)
        checked_meta = artifact_call.check_meta(meta)
        upload = artifact_call.new_upload_id()
        rendered = artifact_call.render_figure(figure, name, self.uploads_dir / pending_uploads.FILES, upload)
        try:
            prepared = artifact_call.check_file(rendered)
            record = artifact_call.build_record(
                upload, name, "figure", prepared.size, checked_step, None, checked_meta,
                artifact_call.figure_media_type(name),
            )  # fmt: skip
        except Exception:
            rendered.unlink(missing_ok=True)
            raise
        self._queue(record, prepared, owned_file=True)
        return record

    def flush(self, timeout: float) -> bool:
        """Wait until every pending-upload record of this run is on disk (at least
        RECORDS_MIN_WAIT: the durability contract does not depend on a short timeout)."""
        deadline = time.monotonic() + max(timeout, RECORDS_MIN_WAIT)
        return all(work.flush(self._stats, max(0.0, deadline - time.monotonic())) for work in self._used())

    def wait(self, timeout: float) -> bool:
        """Write every record (see flush), then wait up to ``timeout`` for this run's uploads;
        False if some are left."""
        deadline = time.monotonic() + timeout
        self.flush(timeout)
        done = all(work.wait(self._stats, max(0.0, deadline - time.monotonic())) for work in self._used())
        return done and self._stats.artifacts_pending == 0

    def _used(self) -> list[uploader.Uploader]:
        with self._lock:
            return list(self._uploaders)

    def _queue(self, record: ArtifactRecord, prepared: artifact_call.PreparedFile, owned_file: bool) -> None:
        """Memory only: the uploader's record writer thread fsyncs the record (module docstring)."""
        settings, identity = self._settings, self._identity
        pending = pending_uploads.PendingUpload(
            run=identity.run_id,
            rank=identity.rank,
            upload=record.upload,
            path=prepared.path,
            name=record.name,
            kind=record.kind,
            size=prepared.size,
            mtime_ns=prepared.mtime_ns,
            redis_url=settings.redis_url,
            prefix=settings.prefix,
            api_url=env.API_URL.get(),
            owned_file=owned_file,
        )
        with self._lock:
            self._event(("artifacts", record))
            self._stats.artifacts_logged += 1
            work = uploader.shared()
            while not work.submit(pending, self._stats, settings.spool_dir, upload=settings.mode == "online"):
                work = uploader.shared()  # closed meanwhile (the exit path, a test's teardown): its successor
            if work not in self._uploaders:
                self._uploaders.append(work)
