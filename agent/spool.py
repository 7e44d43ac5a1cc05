"""The disk spool: an append-only file of packed batches that survives Redis outages and crashes.

Each file belongs to one (run, rank, incarnation). It starts with a magic line and a header
record; then every record is framed as ``<u32 length><u32 crc32(payload)><payload>``
(little-endian). A reader skips a record whose CRC does not match (it is whole, so the next
one starts right after it), stops cleanly at a torn tail or at a length no writer writes (the
framing is lost from there), and reports how many bytes it skipped. The writer holds an
exclusive ``flock`` while the file is open, so readers can tell a finished spool from one still
being written.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import struct
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import msgpack

from .errors import SpoolError, WireFormatError
from .wire import Batch, unpack_batch

log = logging.getLogger("aquarium.agent.spool")

MAGIC = b"AQSPOOL1\n"
FRAME = struct.Struct("<II")
SUFFIX = ".spool"
MAX_RECORD_BYTES = 2 << 20


@dataclass(frozen=True)
class SpoolHeader:
    run: str
    rank: int
    incarnation: str
    created: float

    def as_dict(self) -> dict[str, Any]:
        return {"run": self.run, "rank": self.rank, "inc": self.incarnation, "created": self.created}


@dataclass
class SpoolRead:
    """What a read found: records in file order, where it stopped, and what it could not read."""

    header: SpoolHeader
    records: list[bytes] = field(default_factory=list)
    end_offset: int = 0
    torn_bytes: int = 0


IOV_MAX = os.sysconf("SC_IOV_MAX") if hasattr(os, "sysconf") else 1024
CRC_PIECE = 4096  # below the size (5 KiB) from which zlib releases the GIL


def checksum(payload: bytes) -> int:
    """CRC32 of ``payload``, computed in pieces small enough that zlib keeps the GIL.

    Releasing the GIL for one large buffer costs the calling thread a whole switch interval
    (5 ms) to get it back while the training thread logs: once per record, that stall, not the
    CRC, limited how fast the shipper could spool.
    """
    view = memoryview(payload)
    crc = 0
    for start in range(0, len(view), CRC_PIECE):
        crc = zlib.crc32(view[start : start + CRC_PIECE], crc)
    return crc


def frame(payload: bytes) -> bytes:
    return FRAME.pack(len(payload), checksum(payload)) + payload


class SpoolWriter:
    """Appends framed records to one spool file, holding its lock until closed.

    Each record is one unbuffered write, so a reader (the replay) sees it at once. A failed
    write or fsync (ENOSPC, EIO) truncates the file back to what was there before it (for
    fsync: to what the last successful fsync made durable) and raises, so the caller knows
    exactly which records the file does not hold.
    """

    def __init__(self, path: Path, header: SpoolHeader) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._file: BinaryIO = open(path, "ab", buffering=0)
        head = MAGIC + frame(msgpack.packb(header.as_dict()))
        self.header_end = len(head)
        try:
            fcntl.flock(self._file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            self.size = self.synced_size = os.fstat(self._file.fileno()).st_size
            if self.size == 0:
                self.append_raw([head])
                self.flush()
        except OSError:
            if os.fstat(self._file.fileno()).st_size == 0:  # a full disk: leave no headless file
                path.unlink(missing_ok=True)
            self._file.close()
            raise

    def append(self, payload: bytes) -> int:
        """Write one record; returns the file offset just past it."""
        return self.append_many([payload])

    def append_many(self, payloads: list[bytes]) -> int:
        """Write records with one gathering system call (all or none); returns the offset past
        the last. The payloads are not copied: each GIL release for a copy or a write costs the
        shipper a switch interval while the training thread logs."""
        parts: list[bytes] = []
        for payload in payloads:
            parts += (FRAME.pack(len(payload), checksum(payload)), payload)
        return self.append_raw(parts)

    def append_raw(self, parts: list[bytes]) -> int:
        before = self.size
        try:
            self._write(parts)
        except OSError:
            self._truncate(before)
            raise
        self.size = before + sum(map(len, parts))
        return self.size

    def flush(self, fsync: bool = True) -> None:
        """Make what was appended durable (records are already visible to readers)."""
        if not fsync or self.synced_size == self.size:
            return
        try:
            self._sync()
        except OSError:
            self._truncate(self.synced_size)
            raise
        self.synced_size = self.size

    def close(self) -> None:
        """fsync and release the lock; on a failed fsync the unsynced tail is cut off first."""
        if self._file.closed:
            return
        try:
            self.flush()
        finally:
            self._file.close()  # closing releases the flock

    def _write(self, parts: list[bytes]) -> None:
        """``parts`` in order, with ``writev`` (a short write continues where it stopped)."""
        views = [memoryview(part) for part in parts if part]
        fd = self._file.fileno()
        while views:
            written = os.writev(fd, views[:IOV_MAX])
            if not written:
                raise OSError(errno.EIO, "short write", str(self.path))
            while views and written >= len(views[0]):
                written -= len(views[0])
                views.pop(0)
            if written:
                views[0] = views[0][written:]

    def _sync(self) -> None:
        os.fsync(self._file.fileno())

    def _truncate(self, size: int) -> None:
        try:
            os.ftruncate(self._file.fileno(), size)
        except OSError as e:  # the reader stops cleanly at a torn tail anyway
            log.error("spool %s: could not cut a failed write back (%s)", self.path, e)
        self.size = min(self.size, size)
        self.synced_size = min(self.synced_size, size)


def read_header(f: BinaryIO, path: Path) -> tuple[SpoolHeader, int]:
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise SpoolError(str(path), "not an Aquarium spool file (bad magic)")
    head = f.read(FRAME.size)
    if len(head) < FRAME.size:
        raise SpoolError(str(path), "truncated header")
    length, crc = FRAME.unpack(head)
    payload = f.read(length)
    if len(payload) != length or zlib.crc32(payload) != crc:
        raise SpoolError(str(path), "corrupt header")
    try:
        raw = msgpack.unpackb(payload)
        header = SpoolHeader(raw["run"], int(raw["rank"]), raw["inc"], float(raw["created"]))
    except Exception as e:
        raise SpoolError(str(path), f"unreadable header ({e})") from e
    return header, f.tell()


def read_spool(
    path: Path, start: int | None = None, max_bytes: int | None = None, max_records: int | None = None
) -> SpoolRead:
    """Read records from ``start`` (default: the first record) until the end, a torn record,
    roughly ``max_bytes`` of payload or ``max_records`` records; corrupt records are skipped
    and counted in torn_bytes."""
    with open(path, "rb") as f:
        header, header_end = read_header(f, path)
        result = SpoolRead(header, end_offset=start if start is not None else header_end)
        f.seek(result.end_offset)
        size = os.fstat(f.fileno()).st_size
        budget = max_bytes if max_bytes is not None else size
        while budget > 0 and (max_records is None or len(result.records) < max_records):
            head = f.read(FRAME.size)
            if not head:
                break
            if len(head) < FRAME.size:
                result.torn_bytes += size - result.end_offset
                break
            length, crc = FRAME.unpack(head)
            # The writer never writes an empty record: zeros here are a crash's unwritten blocks.
            payload = f.read(length) if 0 < length <= MAX_RECORD_BYTES else b""
            if len(payload) != length or not payload:
                result.torn_bytes += size - result.end_offset
                break
            result.end_offset += FRAME.size + length
            if checksum(payload) != crc:
                result.torn_bytes += FRAME.size + length
                continue
            result.records.append(payload)
            budget -= length
        return result


def is_locked(path: Path) -> bool:
    """True while a live agent still holds the file open for writing."""
    try:
        with open(path, "rb") as f:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return True
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)
            return False
    except FileNotFoundError:
        return False


def segment_path(spool_dir: Path, run: str, rank: int, incarnation: str, segment: int) -> Path:
    return spool_dir / run / f"{rank}-{incarnation}-{segment:05d}{SUFFIX}"


def spool_files(spool_dir: Path) -> list[Path]:
    """Every spool file under ``spool_dir``, oldest incarnation and segment first."""
    if not spool_dir.is_dir():
        return []
    return sorted(spool_dir.rglob(f"*{SUFFIX}"), key=lambda p: (p.parent.name, p.name))


@dataclass
class ValidRecords:
    """A spool file's records that belong to it, as raw bytes and decoded batches."""

    header: SpoolHeader
    records: list[bytes] = field(default_factory=list)
    batches: list[Batch] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    torn_bytes: int = 0


def read_valid(path: Path) -> ValidRecords:
    """Read a spool file, keeping the records that decode and carry the file's own batch ids.

    Raises SpoolError (or OSError) when the file is not a readable spool at all.
    """
    read = read_spool(path)
    header = read.header
    valid = ValidRecords(header, torn_bytes=read.torn_bytes)
    for record in read.records:
        try:
            batch = unpack_batch(record)
        except WireFormatError as e:
            valid.rejected.append(e.reason)
            continue
        if (batch.id.run, batch.id.rank, batch.id.incarnation) != (header.run, header.rank, header.incarnation):
            valid.rejected.append(
                f"batch {batch.id.run}/{batch.id.rank}/{batch.id.incarnation} "
                f"in the spool of {header.run}/{header.rank}/{header.incarnation}"
            )
            continue
        valid.records.append(record)
        valid.batches.append(batch)
    return valid


def retire(path: Path, rejected: bool) -> None:
    """A committed file goes; one with rejected records stays as ``*.rejected`` for inspection."""
    if rejected:
        path.rename(path.with_suffix(path.suffix + ".rejected"))
        log.warning("spool %s had rejected records; kept as %s.rejected", path, path.name)
    else:
        path.unlink(missing_ok=True)
    try:
        path.parent.rmdir()
    except OSError:
        pass
