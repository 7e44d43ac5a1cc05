"""Which pending entries to take over, and how: poison-pill protection.

Entries a collector read but never acknowledged stay pending: its own after a crash and a
restart under the same name, or a dead sibling's, reclaimed once idle. Redis counts how many
times each was delivered, and that count decides:

- delivered once: the collector most likely died of something else (SIGKILL, OOM, a reboot),
  so the read is retried as a whole, in one transaction;
- delivered again since: one of them may be what kills the collector, so each is taken over
  and handled alone: the others are stored and acknowledged, and only the culprit's count grows;
- delivered ``max_deliveries`` times: it goes to the dead letters without reaching the store,
  so an entry that kills every collector that handles it cannot stop ingest forever.

XPENDING reads the counts without changing them; XCLAIM takes an entry (counting a delivery)
only when the plan says so, so the entries behind a culprit never pay for its crashes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import redis

from aquarium.agent.redis_keys import RedisKeys

Entry = tuple[bytes, dict[bytes, bytes]]


@dataclass(frozen=True)
class PendingEntry:
    entry_id: bytes
    consumer: bytes
    deliveries: int


@dataclass
class Plan:
    together: list[bytes] = field(default_factory=list)  # delivered once: one read, one transaction
    alone: list[bytes] = field(default_factory=list)  # delivered again: each handled on its own
    poison: list[PendingEntry] = field(default_factory=list)  # delivered max_deliveries times


def plan(entries: list[PendingEntry], max_deliveries: int) -> Plan:
    result = Plan()
    for entry in entries:
        if entry.deliveries >= max_deliveries:
            result.poison.append(entry)
        elif entry.deliveries <= 1:
            result.together.append(entry.entry_id)
        else:
            result.alone.append(entry.entry_id)
    return result


def pending_page(
    r: redis.Redis, keys: RedisKeys, *, after: bytes | None, count: int, consumer: str | None, idle_ms: int
) -> list[PendingEntry]:
    """Up to ``count`` pending entries after ``after`` (of ``consumer``, idle ``idle_ms``+), in id order."""
    start = "-" if after is None else "(" + after.decode()
    rows: Any = r.xpending_range(
        keys.stream, keys.group, min=start, max="+", count=count, consumername=consumer, idle=idle_ms or None
    )
    return [PendingEntry(row["message_id"], row["consumer"], int(row["times_delivered"])) for row in rows]


def claim(r: redis.Redis, keys: RedisKeys, consumer: str, idle_ms: int, entry_ids: list[bytes]) -> list[Entry]:
    """XCLAIM ``entry_ids`` for ``consumer`` if still idle ``idle_ms``+ (a sibling may have been faster).

    Entries trimmed while pending come back without fields (or not at all): they are dropped.
    """
    if not entry_ids:
        return []
    message_ids: list[Any] = list(entry_ids)
    reply: Any = r.xclaim(keys.stream, keys.group, consumer, idle_ms, message_ids)
    return [(entry_id, fields) for entry_id, fields in reply if fields is not None]
