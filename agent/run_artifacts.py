"""A run's artifacts: checked at the call, recorded in the next batch, uploaded in the background.

``log_artifact`` / ``log_model`` / ``log_figure`` on a Run come here once the run is known to be
open. Everything that can be wrong raises before anything is written (artifact_call); then, in
this order, the pending-upload record goes to disk, the ArtifactRecord joins the run's events
(it ships with the next batch, through the spool and the ledger like everything else) and the
job goes to the process's uploader (not in offline mode: `aquarium sync` uploads then).
"""

from __future__ import annotations

import logging
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

logger = logging.getLogger("aquarium.agent.run")


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
        self._uploader: uploader.Uploader | None = None  # started by the first artifact of an online run

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
        settings, identity = self._settings, self._identity
        with self._lock:
            if settings.mode == "online" and self._uploader is None:
                self._uploader = uploader.shared()
            work = self._uploader
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
                owner=work.owner_name(settings.spool_dir) if work is not None else "",
            )
            try:
                pending_uploads.write(settings.spool_dir, pending)
            except OSError as e:
                logger.warning(
                    "run %s: artifact %r: could not save its upload record in %s (%s); it is uploaded "
                    "from memory only, and lost if the process ends first",
                    identity.run_id,
                    record.name,
                    self.uploads_dir,
                    e,
                )
            self._event(("artifacts", record))
            self._stats.artifacts_logged += 1
            if work is not None:
                work.submit(pending, self._stats, settings.spool_dir)
