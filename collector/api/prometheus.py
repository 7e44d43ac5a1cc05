"""The collector's counters in the Prometheus text exposition format (``GET /metrics``).

Counters only ever grow (``aquarium_points_stored_total``); Prometheus derives rates from them.
For people reading the page by hand there is also ``aquarium_ingest_points_per_second``: the
rate since the previous scrape. Stream lag and pending come from Redis when a collector (or a
Redis URL) is attached; the store's size from its files.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import redis

if TYPE_CHECKING:
    from aquarium.collector import Collector, Store

log = logging.getLogger("aquarium.collector.api")

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


@dataclass(frozen=True)
class Sample:
    name: str
    kind: str  # counter or gauge
    help: str
    value: float


Source = Callable[[], Iterable[Sample]]


def render(samples: Iterable[Sample]) -> str:
    lines: list[str] = []
    for s in samples:
        value = (
            "NaN"
            if math.isnan(s.value)
            else repr(float(s.value))
            if not float(s.value).is_integer()
            else str(int(s.value))
        )
        lines += [f"# HELP {s.name} {s.help}", f"# TYPE {s.name} {s.kind}", f"{s.name} {value}"]
    return "\n".join(lines) + "\n"


def store_samples(store: Store) -> Source:
    def samples() -> Iterable[Sample]:
        size = sum(_size(store.path.with_name(store.path.name + suffix)) for suffix in ("", "-wal", "-shm"))
        yield Sample("aquarium_store_bytes", "gauge", "Size of the store's SQLite files.", size)
        waiting = len(store.waiting_spool_files())
        yield Sample("aquarium_spool_files_waiting", "gauge", "Spool files in the data dir not yet ingested.", waiting)
        pending = store.pending_artifacts()
        yield Sample("aquarium_artifacts_pending", "gauge", "Artifact records whose bytes have not arrived.", pending)

    return samples


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


class CollectorSource:
    """Counters of the collector running in this process, and its stream's state in Redis."""

    def __init__(self, collector: Collector) -> None:
        self._collector = collector
        self._lock = threading.Lock()
        self._last: tuple[float, int] = (time.monotonic(), collector.stats.points)
        self._rate = 0.0

    def __call__(self) -> Iterable[Sample]:
        stats = self._collector.stats
        for name, help_, value in (
            ("aquarium_stream_entries_read_total", "Stream entries this collector read.", stats.entries),
            ("aquarium_batches_stored_total", "Batches stored (exactly once).", stats.stored),
            ("aquarium_points_stored_total", "Points stored.", stats.points),
            ("aquarium_batches_duplicate_total", "Batches skipped as already stored.", stats.duplicates),
            ("aquarium_dead_letters_total", "Batches moved to the dead letters.", stats.dead_letters),
            ("aquarium_entries_claimed_total", "Entries reclaimed from other collectors.", stats.claimed),
            ("aquarium_spool_batches_replayed_total", "Batches ingested from spool files.", stats.spool_batches),
            ("aquarium_redis_errors_total", "Redis errors the collector retried.", stats.redis_errors),
        ):
            yield Sample(name, "counter", help_, value)
        yield Sample(
            "aquarium_ingest_points_per_second",
            "gauge",
            "Points stored per second since the previous scrape.",
            self._points_rate(stats.points),
        )
        yield from stream_samples(
            self._collector.redis,
            self._collector.keys.stream,
            self._collector.keys.group,
            self._collector.keys.dead_letter,
        )

    def _points_rate(self, points: int) -> float:
        with self._lock:
            now = time.monotonic()
            then, before = self._last
            if now - then >= 1.0:
                self._rate = (points - before) / (now - then)
                self._last = (now, points)
            return self._rate


def stream_samples(client: redis.Redis, stream: str, group: str, dead_letters: str) -> Iterable[Sample]:
    """Lag (entries not yet read by the group), pending (read, not acknowledged), dead letters."""
    try:
        groups = {g["name"].decode(): g for g in client.xinfo_groups(stream)}
        info = groups.get(group)
        dead = client.xlen(dead_letters)
    except redis.ResponseError:  # no stream yet
        info, dead = None, 0
    except redis.RedisError as e:
        log.debug("metrics: Redis unavailable (%s)", e)
        yield Sample("aquarium_redis_up", "gauge", "1 when the collector's Redis answered this scrape.", 0)
        return
    yield Sample("aquarium_redis_up", "gauge", "1 when the collector's Redis answered this scrape.", 1)
    lag = info.get("lag") if info else 0
    yield Sample(
        "aquarium_stream_lag_entries",
        "gauge",
        "Entries in the batch stream the collectors have not read.",
        math.nan if lag is None else lag,
    )
    yield Sample(
        "aquarium_stream_pending_entries",
        "gauge",
        "Entries read but not yet acknowledged.",
        info["pending"] if info else 0,
    )
    yield Sample("aquarium_dead_letters_entries", "gauge", "Entries in the dead-letter stream.", dead)
