"""Cutting: the training thread's queues drained into packed batches with contiguous seqs.

Everything here runs after the call site, so nothing may lose a point silently: an exception
while merging, cutting or packing (not only an ``AquariumError``: msgpack's
``UnicodeEncodeError``, an ``OverflowError``) counts every point that left the queue and did not
make it into a batch as dropped, and a batch that cannot be packed still takes its seq, as an
empty batch, so the collector's watermark never waits for a seq that will not come.
"""

from __future__ import annotations

import logging
from array import array
from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from . import batcher
from .identity import Identity
from .outbox import Held
from .wire import Batch, pack_batch

log = logging.getLogger("aquarium.agent.cutter")

Entry = tuple[int, float, tuple[str, ...], tuple[float, ...]]
DropCounter = Callable[[int, str, "Exception | None"], None]


class PointCounter(Protocol):
    points: int
    batches: int
    artifacts_dropped: int


class Cutter:
    def __init__(
        self,
        points: batcher.PointQueue,
        other_threads: deque[Entry],
        events: deque[tuple[str, Any]],
        ident: Identity,
        meta: dict[str, Any],
        stats: PointCounter,
        drop: DropCounter,
    ) -> None:
        self._points = points
        self._other_threads = other_threads
        self._events = events
        self._ident = ident
        self._meta: dict[str, Any] | None = meta
        self._stats = stats
        self._drop = drop
        self.next_seq = 0

    def cut(self) -> list[Held]:
        """Everything queued so far, as packed batches (events ride in the first)."""
        events = self._take_events()
        # The whole queue at once: taking a prefix of a long queue moves the rest in memory,
        # which in slices made cutting quadratic in the backlog.
        columns = batcher.merge_columns(self._points.take(len(self._points)), self._take_other_threads())
        taken = sum(len(values) for _, values, _ in columns.values())
        self._stats.points += taken
        if not (columns or events):
            return []
        ident = self._ident
        try:
            batches = batcher.cut(columns, events, ident.run_id, ident.rank, ident.incarnation, self.next_seq)
        except Exception as e:
            self._drop(taken, "cut", e)
            if events:  # taken from the deque: said and counted here, or lost without a word
                self._stats.artifacts_dropped += len(events.get("artifacts", ()))
                log.error("run %s: %s not cut (%s); dropped", ident.run_id, "/".join(sorted(events)), e)
            return []
        packed = [self._pack(batch) for batch in batches]
        self.next_seq += len(packed)
        self._stats.batches += len(packed)
        return packed

    def _take_events(self) -> dict[str, Any]:
        events: dict[str, Any] = {}
        for _ in range(len(self._events)):
            kind, payload = self._events.popleft()
            if kind in ("status", "artifacts"):
                events.setdefault(kind, []).append(payload)
            else:
                events.setdefault(kind, {}).update(payload)
        if self._meta is not None:
            events["meta"], self._meta = self._meta, None
        return events

    def _take_other_threads(self) -> batcher.Columns:
        """Entries other threads appended whole; one that does not fit the columns is counted."""
        others = self._other_threads
        entries = [others.popleft() for _ in range(len(others))]
        side = batcher.PointQueue()
        try:
            side.append_entries(entries)
        except Exception as e:  # its arrays may be misaligned now: start again, entry by entry
            side = batcher.PointQueue()
            for step, at, keys, values in entries:
                try:
                    array("q", [step]), array("d", [at]), array("d", values)
                except Exception:
                    self._stats.points += len(values)
                    self._drop(len(values), "other-thread entry", e)
                    continue
                side.append_entries([(step, at, keys, values)])
        return side.take(len(side))

    def _pack(self, batch: Batch) -> Held:
        try:
            return Held(batch.id.seq, pack_batch(batch), batch.point_count)
        except Exception as e:
            error: Exception = e
        if batch.params or batch.tags or batch.meta or batch.status or batch.artifacts:
            log.error(
                "run %s: batch %d: params/tags/status/artifact records not packable (%s); dropped",
                batch.id.run,
                batch.id.seq,
                error,
            )
            self._stats.artifacts_dropped += len(batch.artifacts)
            try:
                return Held(batch.id.seq, pack_batch(Batch(batch.id, batch.metrics)), batch.point_count)
            except Exception as e:
                error = e
        self._drop(batch.point_count, "pack", error)
        return Held(batch.id.seq, pack_batch(Batch(batch.id)), 0)
