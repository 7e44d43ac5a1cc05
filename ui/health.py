"""What the header shows about the system: Redis, the collector, the export workers.

One monitor thread per dashboard process checks every few seconds, so a Redis that hangs never
blocks a session; sessions only read the last ``Health``.

- Redis: a PING on its own short-timeout connection.
- Collector: the store registration under the prefix (``RedisKeys.store``), which a running
  collector renews and which expires soon after its last collector stopped (collector/registration.py).
- Workers: the RQ workers registered on this Redis.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from dataclasses import dataclass

import redis

from aquarium.agent.redis_keys import RedisKeys

__all__ = ["Health", "HealthMonitor", "Level"]

log = logging.getLogger("aquarium.ui.health")


class Level(enum.Enum):
    OK = "ok"
    WARN = "warn"
    DOWN = "down"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Check:
    name: str
    level: Level
    detail: str


@dataclass(frozen=True)
class Health:
    checks: tuple[Check, ...]
    at: float


UNCHECKED = Health(
    (
        Check("Redis", Level.UNKNOWN, "not checked yet"),
        Check("collector", Level.UNKNOWN, "not checked yet"),
        Check("workers", Level.UNKNOWN, "not checked yet"),
    ),
    0.0,
)


def check(redis_url: str | None, prefix: str) -> Health:
    """One round of checks (blocking; at most a few seconds on an unreachable Redis)."""
    if redis_url is None:
        off = "no Redis configured: not live"
        return Health(
            (
                Check("Redis", Level.UNKNOWN, off),
                Check("collector", Level.UNKNOWN, off),
                Check("workers", Level.UNKNOWN, off),
            ),
            time.time(),
        )
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2.0, socket_timeout=2.0)
    try:
        client.ping()
    except redis.RedisError as e:
        down = f"unreachable ({type(e).__name__})"
        client.close()
        return Health(
            (
                Check("Redis", Level.DOWN, down),
                Check("collector", Level.UNKNOWN, "Redis is down"),
                Check("workers", Level.UNKNOWN, "Redis is down"),
            ),
            time.time(),
        )
    try:
        return Health(
            (Check("Redis", Level.OK, "connected"), _collector(client, prefix), _workers(client)), time.time()
        )
    finally:
        client.close()


def _collector(client: redis.Redis, prefix: str) -> Check:
    try:
        value = client.get(RedisKeys(prefix).store)
    except redis.RedisError as e:  # an ACL user without GET on it
        return Check("collector", Level.UNKNOWN, f"cannot tell ({type(e).__name__})")
    if value is None:
        return Check("collector", Level.DOWN, "no collector running")
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    where = text.partition(" ")[2]
    return Check("collector", Level.OK, f"storing into {where}")


def _workers(client: redis.Redis) -> Check:
    try:
        from rq import Worker
    except ModuleNotFoundError:
        return Check("workers", Level.UNKNOWN, "rq is not installed")
    try:
        count = Worker.count(connection=client)
    except redis.RedisError as e:
        return Check("workers", Level.UNKNOWN, f"cannot tell ({type(e).__name__})")
    if not count:
        return Check("workers", Level.WARN, "no export worker (`aquarium worker`)")
    return Check("workers", Level.OK, f"{count} export worker{'s' if count != 1 else ''}")


class HealthMonitor:
    """Runs ``check`` every ``interval`` seconds in a thread; ``latest`` is the last result."""

    def __init__(self, redis_url: str | None, prefix: str = "aquarium", interval: float = 5.0) -> None:
        self.redis_url, self.prefix, self.interval = redis_url, prefix, interval
        self.latest = UNCHECKED
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "HealthMonitor":
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aquarium-ui-health", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def _run(self) -> None:
        while True:
            try:
                self.latest = check(self.redis_url, self.prefix)
            except Exception:  # a check that breaks must not end the monitor
                log.exception("health check failed")
            if self._stop.wait(self.interval):
                return
