"""The backlog: every batch not yet committed, in memory (the outbox) or on disk (the segments).

It owns the rules that move batches between the two and decide what is lost: new batches park
in the spool while the link is down; held batches spill to it past the memory bound or when a
send failed; a batch the disk refuses stays in memory (a shipped one always, a new one within
the bound) and only a new batch that fits nowhere is dropped, counted. A failed fsync hands
back what it cut off, which returns to memory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .outbox import Held, Outbox
from .segments import Segments

DropCounter = Callable[[int, str, "Exception | None"], None]


class SpoolCounter(Protocol):
    batches_spooled: int


class Backlog:
    def __init__(
        self, outbox: Outbox, segments: Segments, max_memory_bytes: int, stats: SpoolCounter, drop: DropCounter
    ) -> None:
        self._outbox = outbox
        self._segments = segments
        self._max_memory_bytes = max_memory_bytes
        self._stats = stats
        self._drop = drop

    def park(self, batches: list[Held]) -> None:
        """New batches to the spool; in memory (within the bound) if the disk fails; else dropped."""
        if self.to_spool(batches):
            self._stats.batches_spooled += len(batches)
            return
        for held in batches:  # one by one: the disk may take some of them
            if self.to_spool([held]):
                self._stats.batches_spooled += 1
            elif self._outbox.bytes + len(held.data) <= self._max_memory_bytes:
                self._outbox.hold(held)
            else:
                self._drop(held.points, "spool", None)

    def to_spool(self, batches: list[Held]) -> bool:
        """Append in one write; ``batches`` share one delivery state."""
        try:
            self._segments.append_many(batches, replay=not (batches and batches[0].sent))
        except OSError as e:
            self._drop(0, "spool", e)
            return False
        return True

    def spill(self, batches: list[Held]) -> None:
        """Move held batches to the spool; those the disk refuses stay in memory."""
        for sent in (True, False):
            group = [held for held in batches if held.sent is sent]
            if group and not self.to_spool(group):
                return
            for held in group:
                self._outbox.release(held)
            self._stats.batches_spooled += 0 if sent else len(group)

    def spill_over_bound(self) -> None:
        """Past the memory bound, the oldest held batches go to the spool."""
        over = []
        size = self._outbox.bytes
        for held in self._outbox:
            if size <= self._max_memory_bytes:
                break
            over.append(held)
            size -= len(held.data)
        self.spill(over)

    def settle(self) -> None:
        """fsync the spool; what a failed fsync cut off goes back to memory."""
        for held in self._segments.sync():
            self._outbox.hold(held)

    def close(self) -> None:
        """At finish: what is held goes to the spool and the segments are closed; what the disk
        refused stays in memory (Redis is its last way out)."""
        self.spill(list(self._outbox))
        for held in self._segments.close():
            self._outbox.hold(held)

    def give_up(self, unconfirmed: Callable[[Held], None]) -> None:
        """The process is finishing with batches only in memory: one never handed to Redis is
        dropped, counted; one that was may still reach the store, so it is ``unconfirmed``."""
        for held in self._outbox:
            if held.handed_over:
                unconfirmed(held)
            else:
                self._drop(held.points, "spool at finish", None)
            self._outbox.release(held)
