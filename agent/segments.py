"""The spool segments of one shipper: append, replay cursor, rewind, drop.

A segment is one spool file. Its replay cursor (``sent_offset``) says how far its records are on
the current Redis server; a segment is deleted once it is fully sent and the commit watermark of
its incarnation covers its highest seq. Besides its own segments, a restarted process adopts the
orphans of a dead incarnation of the same run and rank (a SLURM requeue): files whose lock is
free. It locks them, replays them and deletes them once their own watermark covers them.

Appending never loses a record silently: a failed write raises, and a failed fsync returns the
batches it cut off, so the shipper can keep them in memory or count them as dropped.
"""

from __future__ import annotations

import fcntl
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from .errors import SpoolError
from .identity import Identity
from .outbox import Held
from .redis_keys import RedisKeys
from .spool import SUFFIX, SpoolHeader, SpoolWriter, read_spool, read_valid, segment_path

log = logging.getLogger("aquarium.agent.segments")


@dataclass(eq=False)
class Segment:
    path: Path
    watermark_field: str
    header_end: int
    size: int
    sent_offset: int
    writer: SpoolWriter | None = None  # None: closed, or an adopted orphan
    max_seq: int = -1
    unsynced: list[Held] = field(default_factory=list)  # appended since the last good fsync
    orphan_lock: BinaryIO | None = None

    @property
    def unsent(self) -> bool:
        return self.sent_offset < self.size


@dataclass
class Chunk:
    """Records read from one segment for one round trip, and where the cursor goes after it."""

    segment: Segment
    records: list[bytes]
    end_offset: int


class Segments:
    def __init__(self, spool_dir: Path, ident: Identity, segment_bytes: int) -> None:
        self._spool_dir = spool_dir
        self._ident = ident
        self._segment_bytes = segment_bytes
        self.own_field = RedisKeys.watermark_field(ident.rank, ident.incarnation)
        self._all: list[Segment] = []
        self._next_number = 0

    def __len__(self) -> int:
        return len(self._all)

    @property
    def paths(self) -> list[str]:
        return [str(s.path) for s in self._all]

    @property
    def replay_pending(self) -> bool:
        return any(s.unsent for s in self._all)

    def watermark_fields(self) -> list[str]:
        """The own incarnation's field first, then each adopted orphan's."""
        fields = [self.own_field]
        for segment in self._all:
            if segment.watermark_field not in fields:
                fields.append(segment.watermark_field)
        return fields

    # -- appending -----------------------------------------------------------------------------
    def append(self, held: Held, replay: bool) -> None:
        """Write ``held`` to the open segment; ``replay=False`` for a batch already on the server.

        Raises OSError (nothing of the record stays in the file then).
        """
        self.append_many([held], replay)

    def append_many(self, batches: list[Held], replay: bool) -> None:
        """Write ``batches`` with one system call: all of them, or (raising OSError) none."""
        if not batches:
            return
        segment = self._open_segment()
        assert segment.writer is not None
        all_sent = not segment.unsent
        segment.size = segment.writer.append_many([held.data for held in batches])
        segment.max_seq = max(segment.max_seq, *(held.seq for held in batches))
        segment.unsynced.extend(batches)
        if not replay and all_sent:  # else it is replayed with the unsent records before it: a harmless repeat
            segment.sent_offset = segment.size

    def _open_segment(self) -> Segment:
        own = [s for s in self._all if s.orphan_lock is None]
        if own and own[-1].writer is not None and own[-1].size < self._segment_bytes:
            return own[-1]
        ident = self._ident
        path = segment_path(self._spool_dir, ident.run_id, ident.rank, ident.incarnation, self._next_number)
        self._next_number += 1
        writer = SpoolWriter(path, SpoolHeader(ident.run_id, ident.rank, ident.incarnation, time.time()))
        segment = Segment(path, self.own_field, writer.header_end, writer.size, writer.size, writer)
        self._all.append(segment)
        return segment

    def sync(self) -> list[Held]:
        """fsync every open segment and close those a newer one replaced; returns the batches a
        failed fsync cut off (the file no longer holds them)."""
        lost: list[Held] = []
        for segment in self._all:
            if segment.writer is None:
                continue
            try:
                segment.writer.flush(fsync=True)
                if segment is not self._all[-1]:
                    segment.writer.close()
                    segment.writer = None
            except OSError as e:
                log.error(
                    "spool %s: fsync failed (%s); %d batches kept in memory", segment.path, e, len(segment.unsynced)
                )
                lost.extend(segment.unsynced)
                self._cut_back(segment)
            segment.unsynced = []
        return lost

    def close(self) -> list[Held]:
        """Close every segment (releasing the locks); returns what a failed final fsync cut off."""
        lost: list[Held] = []
        for segment in self._all:
            if segment.writer is not None:
                try:
                    segment.writer.close()
                except OSError as e:
                    log.error("spool %s: fsync at close failed (%s)", segment.path, e)
                    lost.extend(segment.unsynced)
                    self._cut_back(segment)
                segment.writer = None
            segment.unsynced = []
            if segment.orphan_lock is not None:
                segment.orphan_lock.close()
                segment.orphan_lock = None
        return lost

    def _cut_back(self, segment: Segment) -> None:
        assert segment.writer is not None
        segment.size = segment.writer.size
        segment.sent_offset = min(segment.sent_offset, segment.size)

    # -- replaying -----------------------------------------------------------------------------
    def next_chunk(self, max_bytes: int, max_records: int) -> Chunk | None:
        """The oldest unsent records, at most ``max_bytes`` / ``max_records`` of them."""
        for segment in [s for s in self._all if s.unsent]:
            try:
                read = read_spool(segment.path, start=segment.sent_offset, max_bytes=max_bytes, max_records=max_records)
            except FileNotFoundError:
                # A closed segment was ingested (and deleted) by a collector: it reached the store.
                log.info("run %s: spool %s was ingested by a collector", self._ident.run_id, segment.path)
                self._drop(segment)
                continue
            return Chunk(segment, read.records, read.end_offset if read.records else segment.size)
        return None

    def mark_replayed(self, chunk: Chunk) -> None:
        chunk.segment.sent_offset = max(chunk.segment.sent_offset, chunk.end_offset)

    def rewind(self) -> None:
        """Redis restarted (maybe empty): every record is to be sent again."""
        for segment in self._all:
            segment.sent_offset = segment.header_end

    def confirm(self, watermark_field: str, seq: int) -> int:
        """Delete the fully sent segments of that incarnation the watermark covers."""
        covered = [s for s in self._all if s.watermark_field == watermark_field and s.max_seq <= seq and not s.unsent]
        for segment in covered:
            self._drop(segment)
        return len(covered)

    def _drop(self, segment: Segment) -> None:
        if segment.writer is not None:
            try:
                segment.writer.close()
            except OSError:  # committed already: what the file holds no longer matters
                pass
        if segment.orphan_lock is not None:
            segment.orphan_lock.close()
        segment.path.unlink(missing_ok=True)
        self._all.remove(segment)

    # -- orphans -------------------------------------------------------------------------------
    def adopt_orphans(self) -> int:
        """Take over the unlocked spool files of earlier incarnations of this run and rank."""
        ident = self._ident
        folder = self._spool_dir / ident.run_id
        if not folder.is_dir():
            return 0
        adopted = 0
        for path in sorted(folder.glob(f"{ident.rank}-*{SUFFIX}")):
            segment = self._adopt(path)
            if segment is not None:
                self._all.insert(adopted, segment)
                adopted += 1
        if adopted:
            log.info("run %s: replaying %d spool files of an earlier incarnation", ident.run_id, adopted)
        return adopted

    def _adopt(self, path: Path) -> Segment | None:
        ident = self._ident
        lock: BinaryIO = open(path, "rb")
        try:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            valid = read_valid(path)
        except (BlockingIOError, SpoolError, OSError):  # live, or not a spool file we can read
            lock.close()
            return None
        header = valid.header
        if (header.run, header.rank) != (ident.run_id, ident.rank) or header.incarnation == ident.incarnation:
            lock.close()
            return None
        size = path.stat().st_size
        first = read_spool(path, max_bytes=0)
        return Segment(
            path,
            RedisKeys.watermark_field(header.rank, header.incarnation),
            first.end_offset,
            size,
            first.end_offset,
            max_seq=max((b.id.seq for b in valid.batches), default=-1),
            orphan_lock=lock,
        )
