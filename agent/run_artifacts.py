"""A run's artifacts: checked at the call, recorded in the next batch, uploaded in the background.

``log_artifact`` / ``log_model`` / ``log_figure`` on a Run come here once the run is known to be
open. Everything that can be wrong raises before anything is written (artifact_call); then the
ArtifactRecord joins the run's events (it ships with the next batch, through the spool and the
ledger like everything else) and the job goes to the process's uploader thread, which writes the
pending-upload record to disk first and then uploads (in offline mode it only writes the record:
`aquarium sync` uploads then). A figure is the exception: it is rendered at the call, since the
object may change as soon as the call returns.
"""

from __future__ import annotations

import threading
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
        self._uploader: uploader.Uploader | None = None  # the process's, taken by the first artifact

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

    def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` for this run's uploads; False if some are left."""
        work = self._uploader
        return work.wait(self._stats, timeout) if work is not None else self._stats.artifacts_pending == 0

    def _queue(self, record: ArtifactRecord, prepared: artifact_call.PreparedFile, owned_file: bool) -> None:
        """Memory only, as every log_* call: the uploader thread writes the pending-upload record
        (fsynced) before it hashes, and in offline mode only writes it, for `aquarium sync`."""
        settings, identity = self._settings, self._identity
        with self._lock:
            if self._uploader is None:
                self._uploader = uploader.shared()
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
            self._event(("artifacts", record))
            self._stats.artifacts_logged += 1
            self._uploader.submit(pending, self._stats, settings.spool_dir, upload=settings.mode == "online")
