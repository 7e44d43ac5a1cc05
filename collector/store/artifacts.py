"""Artifacts in the store: records from batches, completions from uploads, joined on read.

A record (name, kind, size, step, ...) travels in the batch stream and is written with its batch,
through the ledger, so it is stored exactly once. The bytes travel over HTTP; when an upload
finishes, its completion (sha256, size, changed) is written here. Either may come first, so
both are keyed by (run, upload) and an artifact's state is read from the join: ``pending``
until the completion exists, then ``stored``, or ``changed`` when the file changed between the
call and its upload (the agent said so, or the size differs from the call's).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from aquarium.agent.errors import AquariumError, RunNotFoundError, shown
from aquarium.agent.wire import Batch

PENDING, STORED, CHANGED = "pending", "stored", "changed"


class ArtifactNotFoundError(AquariumError):
    """Raised when a run has no artifact of that name (for that rank)."""

    def __init__(self, run_id: str, name: str, rank: int | None = None) -> None:
        self.run_id, self.name, self.rank = run_id, name, rank
        where = "" if rank is None else f" from rank {rank}"
        super().__init__(f"run {run_id!r} has no artifact {shown(name)}{where}")


class ArtifactPendingError(AquariumError):
    """Raised when an artifact's record is stored but its bytes have not been uploaded (yet)."""

    def __init__(self, run_id: str, name: str, rank: int) -> None:
        self.run_id, self.name, self.rank = run_id, name, rank
        super().__init__(
            f"artifact {shown(name)} of run {run_id!r} (rank {rank}) is still pending: its upload has not "
            "completed (the agent retries; `aquarium sync` completes what a finished job left)"
        )


class UploadConflictError(AquariumError):
    """Raised when an upload id already completed with other bytes (a forged or confused client)."""

    def __init__(self, run_id: str, upload: str, stored: str, given: str) -> None:
        self.run_id, self.upload = run_id, upload
        super().__init__(
            f"upload {upload} of run {run_id!r} already completed with sha256 {stored[:12]}..., not {given[:12]}..."
        )


def insert_records(conn: sqlite3.Connection, batch: Batch) -> None:
    """The batch's artifact records (runs inside ingest's transaction). An upload id seen before
    in the run keeps its first record: ids are unique per call, a repeat is not a new artifact."""
    if not batch.artifacts:
        return
    i = batch.id
    conn.executemany(
        """INSERT OR IGNORE INTO artifacts (run_id, rank, incarnation, seq, upload, name, kind, size, step,
                                            framework, media_type, meta, logged_at)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        [
            (
                i.run,
                i.rank,
                i.incarnation,
                i.seq,
                a.upload,
                a.name,
                a.kind,
                a.size,
                a.step,
                a.framework,
                a.media_type,
                json.dumps(a.meta, default=str),
                a.time,
            )  # fmt: skip
            for a in batch.artifacts
        ],
    )


def complete_upload(
    conn: sqlite3.Connection, run_id: str, upload: str, sha256: str, size: int, changed: bool, now: float
) -> tuple[str, bool]:
    """Record that ``upload``'s bytes are stored; returns (state, whether it was new).

    Idempotent: completing an upload again with the same sha256 changes nothing; with another
    raises UploadConflictError. Raises RunNotFoundError for a run the store does not hold (the
    agent retries: the run's first batch may still be on its way)."""
    require_run(conn, run_id)
    row = conn.execute(
        "SELECT sha256 FROM artifact_uploads WHERE run_id = ? AND upload = ?", (run_id, upload)
    ).fetchone()
    if row is not None:
        if row[0] != sha256:
            raise UploadConflictError(run_id, upload, row[0], sha256)
        return upload_state(conn, run_id, upload), False
    conn.execute(
        "INSERT INTO artifact_uploads (run_id, upload, sha256, size, changed, completed_at) VALUES (?, ?, ?, ?, ?, ?)",
        (run_id, upload, sha256, size, int(changed), now),
    )
    return upload_state(conn, run_id, upload), True


def upload_state(conn: sqlite3.Connection, run_id: str, upload: str) -> str:
    """``stored``/``changed`` of a completed upload (``pending`` if it has not completed)."""
    row = conn.execute(
        """SELECT u.size, u.changed, a.size FROM artifact_uploads u
           LEFT JOIN artifacts a ON a.run_id = u.run_id AND a.upload = u.upload
           WHERE u.run_id = ? AND u.upload = ?""",
        (run_id, upload),
    ).fetchone()
    if row is None:
        return PENDING
    return _state(row[0], row[1], row[2])


def upload_sha256(conn: sqlite3.Connection, run_id: str, upload: str) -> str | None:
    row = conn.execute(
        "SELECT sha256 FROM artifact_uploads WHERE run_id = ? AND upload = ?", (run_id, upload)
    ).fetchone()
    return None if row is None else str(row[0])


def _state(uploaded_size: int | None, changed: int | None, recorded_size: int | None) -> str:
    if uploaded_size is None:
        return PENDING
    if changed or (recorded_size is not None and recorded_size != uploaded_size):
        return CHANGED
    return STORED


def require_run(conn: sqlite3.Connection, run_id: str) -> None:
    if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise RunNotFoundError(run_id)


_SELECT = """SELECT a.upload, a.name, a.kind, a.rank, a.size AS recorded_size, u.size AS uploaded_size,
                    u.sha256, a.step, a.framework, a.media_type, a.meta, a.logged_at, u.changed
             FROM artifacts a LEFT JOIN artifact_uploads u ON u.run_id = a.run_id AND u.upload = a.upload"""


def _artifact(row: sqlite3.Row | tuple[Any, ...]) -> dict[str, Any]:
    upload, name, kind, rank, recorded, uploaded, sha, step, framework, media_type, meta, at, changed = row
    return {
        "upload": upload,
        "name": name,
        "kind": kind,
        "rank": rank,
        "size": recorded if uploaded is None else uploaded,
        "sha256": sha,
        "step": step,
        "framework": framework,
        "media_type": media_type,
        "meta": json.loads(meta),
        "logged_at": at,
        "state": _state(uploaded, changed, recorded),
    }


def list_artifacts(conn: sqlite3.Connection, run_id: str) -> list[dict[str, Any]]:
    """The run's artifacts in the order they were logged; RunNotFoundError for an unknown run.

    ``size`` is the uploaded size once the upload completed, else the size at the call."""
    require_run(conn, run_id)
    rows = conn.execute(_SELECT + " WHERE a.run_id = ? ORDER BY a.logged_at, a.id", (run_id,)).fetchall()
    return [_artifact(row) for row in rows]


def find_artifact(conn: sqlite3.Connection, run_id: str, name: str, rank: int | None = None) -> dict[str, Any]:
    """The latest record named ``name`` (of ``rank``, else of any rank), joined with its upload.

    Raises RunNotFoundError, ArtifactNotFoundError; a record whose upload has not completed is
    returned with state ``pending`` (the caller decides whether that is an error)."""
    require_run(conn, run_id)
    sql = _SELECT + " WHERE a.run_id = ? AND a.name = ?"
    args: list[Any] = [run_id, name]
    if rank is not None:
        sql += " AND a.rank = ?"
        args.append(rank)
    row = conn.execute(sql + " ORDER BY a.logged_at DESC, a.id DESC LIMIT 1", args).fetchone()
    if row is None:
        raise ArtifactNotFoundError(run_id, name, rank)
    return _artifact(row)


def pending_count(conn: sqlite3.Connection) -> int:
    """Records, across runs, whose bytes have not arrived."""
    row = conn.execute(
        """SELECT count(*) FROM artifacts a
           WHERE NOT EXISTS (SELECT 1 FROM artifact_uploads u WHERE u.run_id = a.run_id AND u.upload = a.upload)"""
    ).fetchone()
    return int(row[0])


def delete_run_artifacts(conn: sqlite3.Connection, run_id: str) -> None:
    """Forget a deleted run's artifacts (their blobs stay: other runs may hold the same bytes)."""
    conn.execute("DELETE FROM artifacts WHERE run_id = ?", (run_id,))
    conn.execute("DELETE FROM artifact_uploads WHERE run_id = ?", (run_id,))
