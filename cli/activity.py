"""Which collectors are running: what `doctor` reports and what `demo` waits for.

Redis >= 7.2 reports, per consumer of a group, ``idle``: milliseconds since its last *attempted*
read, which a collector blocking in XREADGROUP (100 ms at a time) keeps near zero. Before 7.2
(Debian 12 ships 7.0), ``idle`` counts from the last read that *delivered* entries: a collector
waiting on an empty stream looks dead after a few seconds, which is why `doctor` reported 0
active collectors while one ran. On those servers the connections whose last command is one
only collectors send, within the last second, are counted instead (CLIENT LIST): that count covers every prefix on the
server, and a user who may not run CLIENT LIST gets "unknown".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis

from aquarium.agent.redis_keys import RedisKeys

ACTIVE_IDLE_MS = 5000  # a running collector attempts a read every 100 ms
CLIENT_IDLE_SECONDS = 1
COLLECTOR_COMMANDS = {"xreadgroup", "xclaim", "xack", "xtrim"}


@dataclass(frozen=True)
class Activity:
    """Running collectors by name (consumer name, or client address before Redis 7.2)."""

    names: list[str] | None  # None: this server and user cannot tell
    per_group: bool  # True: counted in this prefix's group; False: across the whole server

    def __bool__(self) -> bool:
        return bool(self.names)


def active_collectors(client: redis.Redis, keys: RedisKeys) -> Activity:
    try:
        consumers: list[dict[str, Any]] = client.xinfo_consumers(keys.stream, keys.group)
    except redis.ResponseError:  # no stream or no group yet: nobody has ever read
        return Activity([], per_group=True)
    if _idle_counts_attempted_reads(client, consumers):
        return Activity(
            [_text(c["name"]) for c in consumers if int(c.get("idle", ACTIVE_IDLE_MS)) < ACTIVE_IDLE_MS],
            per_group=True,
        )
    try:
        clients: list[dict[str, Any]] = client.client_list()
    except redis.ResponseError:  # NOPERM: an ACL user without CLIENT LIST
        return Activity(None, per_group=False)
    return Activity([str(c["addr"]) for c in clients if _reads_as_a_collector(c)], per_group=False)


def _idle_counts_attempted_reads(client: redis.Redis, consumers: list[dict[str, Any]]) -> bool:
    """Redis >= 7.2 (whose consumers carry ``inactive``). Before 7.2 a collector blocking on an empty
    stream may not even be listed yet (XREADGROUP creates the consumer only once it delivers)."""
    if consumers:
        return "inactive" in consumers[0]
    try:
        version = str(client.info("server")["redis_version"])
    except redis.ResponseError:  # NOPERM: guess from what the consumers say
        return True
    return tuple(int(part) for part in version.split(".")[:2]) >= (7, 2)


def _reads_as_a_collector(client: dict[str, Any]) -> bool:
    """Last command one only collectors send, within the last second (a collector's blocking
    read returns every 100 ms; a connection left open by a collector that stopped goes idle)."""
    return (
        client.get("cmd") in COLLECTOR_COMMANDS
        and int(client.get("idle", CLIENT_IDLE_SECONDS + 1)) <= CLIENT_IDLE_SECONDS
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
