"""Keeping the stream and its group tidy: trimming below every group's acks, and letting go of
consumers that died with nothing pending.

Both run in the collector's maintenance, from any collector of the group; both are safe to run
from several at once.
"""

from __future__ import annotations

import logging
from typing import Any

import redis

from aquarium.agent.redis_keys import RedisKeys

log = logging.getLogger("aquarium.collector.upkeep")

# Atomic, so a consumer that read something since we looked keeps its pending entries: deleting
# a consumer deletes its pending entries, which no one could then reclaim.
_DELETE_IF_NOTHING_PENDING = """
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then return 0 end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


def trim(r: redis.Redis, keys: RedisKeys) -> int:
    """XTRIM MINID below the oldest entry any group still needs (pending or undelivered)."""
    try:
        groups: Any = r.xinfo_groups(keys.stream)
    except redis.ResponseError:
        return 0
    floor: tuple[int, int] | None = None
    for group in groups:
        ms, seq = _parse_id(group["last-delivered-id"])
        candidate = (ms, seq + 1)  # everything delivered up to here is acked, unless something is pending
        if group["pending"]:
            summary: Any = r.xpending(keys.stream, group["name"])
            if summary["min"] is not None:  # None: a sibling acked the last ones since XINFO
                candidate = min(candidate, _parse_id(summary["min"]))
        floor = candidate if floor is None or candidate < floor else floor
    if floor is None or floor <= (0, 0):
        return 0
    return int(r.xtrim(keys.stream, minid=f"{floor[0]}-{floor[1]}", approximate=False))


def remove_idle_consumers(r: redis.Redis, keys: RedisKeys, me: str, idle_ms: int) -> list[str]:
    """Delete the group's consumers idle ``idle_ms``+ with nothing pending (dead collectors); returns their names."""
    try:
        consumers: Any = r.xinfo_consumers(keys.stream, keys.group)
    except redis.ResponseError:  # no stream or no group (yet, or any more)
        return []
    removed = []
    for consumer in consumers:
        name = consumer["name"].decode() if isinstance(consumer["name"], bytes) else str(consumer["name"])
        if name == me or consumer["pending"] or int(consumer["idle"]) < idle_ms:
            continue
        if remove_consumer_if_nothing_pending(r, keys, name):
            removed.append(name)
    if removed:
        log.info("removed %d idle consumers with nothing pending: %s", len(removed), ", ".join(removed))
    return removed


def remove_consumer_if_nothing_pending(r: redis.Redis, keys: RedisKeys, name: str) -> bool:
    return bool(r.eval(_DELETE_IF_NOTHING_PENDING, 1, keys.stream, keys.group, name))


def _parse_id(entry_id: bytes | str) -> tuple[int, int]:
    text = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
    ms, _, seq = text.partition("-")
    return int(ms), int(seq or 0)
