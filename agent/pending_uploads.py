"""Pending-upload records: one small JSON file per artifact whose bytes the collector lacks.

Written (and fsynced) by the record writer thread soon after the call (record_writer; never on
the caller's thread), removed when the upload completes, so an upload survives the process:
`aquarium sync` finds what is left in ``<spool dir>/uploads/`` and completes it with the same
protocol. A record a live process still owns is marked by that process's lock file (an
``flock`` held for the life of the uploader), so sync leaves it to its owner.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, BinaryIO

from .fsync import fsync_file, sync_dir
from .wire import UPLOAD_ID_PATTERN

UPLOADS = "uploads"
SUFFIX = ".json"
LOCK_SUFFIX = ".lock"
FILES = "files"  # figures rendered at the call, owned (and removed) by the upload


@dataclass
class PendingUpload:
    """Everything needed to upload one artifact later, from any process."""

    run: str
    rank: int
    upload: str
    path: str  # absolute, symlinks resolved at the call
    name: str
    kind: str
    size: int  # os.stat at the call
    mtime_ns: int
    redis_url: str = ""
    prefix: str = "aquarium"
    api_url: str = ""
    sha256: str | None = None
    owned_file: bool = False  # a rendered figure: removed once uploaded
    owner: str = ""  # the lock file of the process that logged it
    failed: str | None = None  # why the last attempt failed for good (400/413/401), if it did
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> "PendingUpload":
        known = {f.name for f in fields(cls)}
        record = cls(**{k: v for k, v in raw.items() if k in known})
        if not (isinstance(record.upload, str) and UPLOAD_ID_PATTERN.fullmatch(record.upload)):
            raise ValueError(f"bad upload id {record.upload!r}")
        return record


def uploads_dir(spool_dir: Path) -> Path:
    return spool_dir / UPLOADS


def record_path(spool_dir: Path, upload: str) -> Path:
    return uploads_dir(spool_dir) / f"{upload}{SUFFIX}"


def write(spool_dir: Path, record: PendingUpload, sync_folder: bool = True) -> Path:
    """Write ``record`` atomically and durably (temp file, fsync, rename, fsync the dir).

    ``sync_folder=False`` leaves the directory's fsync to the caller (one for many records)."""
    folder = uploads_dir(spool_dir)
    folder.mkdir(parents=True, exist_ok=True)
    path = record_path(spool_dir, record.upload)
    temp = path.with_name(f".{path.name}.tmp")
    data = json.dumps(asdict(record), separators=(",", ":")).encode()
    with open(temp, "wb") as f:
        f.write(data)
        fsync_file(f)
    os.replace(temp, path)
    if sync_folder:
        sync_dir(folder)
    return path


def remove(spool_dir: Path, upload: str) -> None:
    path = record_path(spool_dir, upload)
    path.unlink(missing_ok=True)
    sync_dir(path.parent)


def read_all(spool_dir: Path) -> tuple[list[tuple[Path, PendingUpload]], list[tuple[Path, str]]]:
    """Every pending record under ``spool_dir`` (oldest first), and the files that are not one."""
    folder = uploads_dir(spool_dir)
    if not folder.is_dir():
        return [], []
    records: list[tuple[Path, PendingUpload]] = []
    unreadable: list[tuple[Path, str]] = []
    paths = sorted(folder.glob(f"*{SUFFIX}"), key=lambda p: (p.stat().st_mtime_ns, p.name))
    for path in paths:
        try:
            raw = json.loads(path.read_text())
            if not isinstance(raw, dict):
                raise ValueError("not a JSON object")
            records.append((path, PendingUpload.from_json(raw)))
        except (OSError, ValueError, TypeError) as e:
            unreadable.append((path, f"{type(e).__name__}: {e}"))
    return records, unreadable


def owner_is_alive(spool_dir: Path, record: PendingUpload) -> bool:
    """True while the process that logged ``record`` still holds its lock file."""
    if not record.owner or "/" in record.owner:
        return False
    path = uploads_dir(spool_dir) / record.owner
    try:
        with open(path, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            return False
    except FileNotFoundError:
        return False


class OwnerLock:
    """The lock file a process holds (flock) while it may still upload its own records."""

    def __init__(self, spool_dir: Path) -> None:
        folder = uploads_dir(spool_dir)
        folder.mkdir(parents=True, exist_ok=True)
        self.name = f".owner-{socket.gethostname()}-{os.getpid()}{LOCK_SUFFIX}"
        self.path = folder / self.name
        self._file: BinaryIO = open(self.path, "ab")
        fcntl.flock(self._file.fileno(), fcntl.LOCK_EX)

    def close(self, remove: bool = True) -> None:
        """Release the lock; ``remove=False`` (a forked child's copy) leaves the file to its owner."""
        if not self._file.closed:
            self._file.close()
        if remove:
            self.path.unlink(missing_ok=True)


def remove_stale_locks(spool_dir: Path) -> None:
    """Lock files no live process holds (their owners exited): removed by `aquarium sync`."""
    folder = uploads_dir(spool_dir)
    if not folder.is_dir():
        return
    for path in folder.glob(f".owner-*{LOCK_SUFFIX}"):
        try:
            with open(path, "rb") as f:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                path.unlink(missing_ok=True)
        except (BlockingIOError, FileNotFoundError):
            continue
