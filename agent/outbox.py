"""The outbox: packed batches kept in memory until the collector's commit watermark covers them.

An XADD reply is not a durable ack, so a batch stays here after it was sent. Each held batch is
in one of two named states: ``UNSENT`` (not on the current Redis server as far as we know: new,
or a send failed, or Redis restarted) and ``SENT`` (XADDed, waiting for the watermark). Batches
leave when the watermark covers them or when the shipper moves them to the spool. Apart from its
state, a batch remembers whether it was ever handed to Redis: a send that failed midway, or a
server that restarted from its AOF, may still deliver it, so losing it later is "unconfirmed",
never "dropped".
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Iterator
from dataclasses import dataclass


class Delivery(enum.Enum):
    UNSENT = "unsent"
    SENT = "sent"


@dataclass(slots=True)
class Held:
    """One packed batch and how many points it carries (what is dropped if it is lost)."""

    seq: int
    data: bytes
    points: int
    state: Delivery = Delivery.UNSENT
    handed_over: bool = False  # in a round trip once: Redis may hold it whatever its state now

    @property
    def sent(self) -> bool:
        return self.state is Delivery.SENT


class Outbox:
    """Held batches in seq order, with their total size for the memory bound."""

    def __init__(self) -> None:
        self._held: dict[int, Held] = {}
        self.bytes = 0

    def __len__(self) -> int:
        return len(self._held)

    def __iter__(self) -> Iterator[Held]:
        return iter(list(self._held.values()))

    def hold(self, held: Held) -> None:
        """Keep ``held``; a batch that comes back (a failed spool write) is put in its seq place."""
        out_of_order = bool(self._held) and held.seq < next(reversed(self._held))
        self._held[held.seq] = held
        self.bytes += len(held.data)
        if out_of_order:
            self._held = dict(sorted(self._held.items()))

    def release(self, held: Held) -> None:
        """Forget ``held``: it is in the spool now, or committed."""
        if self._held.pop(held.seq, None) is not None:
            self.bytes -= len(held.data)

    def unsent(self) -> list[Held]:
        return [h for h in self._held.values() if not h.sent]

    @staticmethod
    def mark_handed_over(batches: Iterable[Held]) -> None:
        """A round trip failed midway: whether Redis holds them is not known."""
        for held in batches:
            held.handed_over = True

    def mark_sent(self, batches: Iterable[Held]) -> None:
        for held in batches:
            held.state = Delivery.SENT
            held.handed_over = True

    def rewind(self) -> int:
        """Redis failed mid-send or restarted: nothing is known to be on the server any more."""
        count = 0
        for held in self._held.values():
            count += held.sent
            held.state = Delivery.UNSENT
        return count

    def confirm(self, watermark: int) -> int:
        """Forget every batch the watermark covers; returns how many went."""
        covered = []
        for held in self._held.values():  # in seq order
            if held.seq > watermark:
                break
            covered.append(held)
        for held in covered:
            self.release(held)
        return len(covered)

    def oldest(self) -> Held | None:
        return next(iter(self._held.values()), None)
