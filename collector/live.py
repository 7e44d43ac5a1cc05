"""Live fan-out: what each commit stored, published on Redis pub/sub, and a subscriber for it.

After each commit the collector publishes, per run, one message on ``<prefix>:live:<run>``:
msgpack ``{"v", "run", "src", "n", "series": [{"key", "rank", "steps", "values", "times"}],
"change"}`` with the arrays columnar as on the wire (LE int64 steps, LE float64 values and
times). ``src`` names the publishing collector and ``n`` counts its messages for the run
(1, 2, ...): a jump in ``n`` means a message was lost. Run-level changes (a new run, a status,
params, tags, metadata) go in ``change`` and, for run lists, on ``<prefix>:live:runs``.

Pub/sub is at-most-once. ``follow`` therefore backfills from the store by step on every
(re)subscription and whenever ``n`` jumps, and yields a point only when its step is past the
last one it yielded for that series: what it yields converges to what is stored, each step once.
(A step logged again, or logged below the series' last step, is not shown live; the store has it.)

    for item in follow("redis://localhost:6379/0", "my-run", source=Api("aquarium_data")):
        ...  # Points(run, key, rank, steps, values, times) or RunChange(run, change)
"""

from __future__ import annotations

import os
import socket
import threading
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import msgpack
import numpy as np
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from aquarium.agent.errors import RunNotFoundError
from aquarium.agent.redis_keys import RedisKeys

from .store import IngestResult, KeyNotFoundError, Window

VERSION = 1
SeriesKey = tuple[str, int]
NO_STEP = np.iinfo(np.int64).min


@dataclass(frozen=True, eq=False)
class Points:
    """Committed points of one series, sorted by step (arrays may be read-only views)."""

    run: str
    key: str
    rank: int
    steps: np.ndarray  # int64
    values: np.ndarray  # float64
    times: np.ndarray  # float64, unix seconds: when each point was logged

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class RunChange:
    """A commit changed the run: ``change`` has ``new``, ``status`` ([status, at] pairs),
    ``params``/``tags``/``meta`` (the names set)."""

    run: str
    change: dict[str, Any]


@dataclass(frozen=True)
class Commit:
    """One decoded live message."""

    run: str
    src: str
    n: int
    points: list[Points]
    change: dict[str, Any] | None
    omitted: bool = False  # the collector left the points out (it heard of no subscriber): backfill


# -- publishing (the collector) ----------------------------------------------------------------
class Publisher:
    """Builds the live messages of one commit: ``(channel, payload)`` pairs, one per run."""

    def __init__(self, keys: RedisKeys, source: str | None = None) -> None:
        self.keys = keys
        self.source = source or f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"
        self._counts: dict[str, int] = defaultdict(int)
        self._listened: dict[str, bool] = {}  # run -> did its last message reach a subscriber

    def messages(self, result: IngestResult) -> list[tuple[str, bytes]]:
        series: dict[str, dict[SeriesKey, list[list[bytes]]]] = defaultdict(dict)
        changes: dict[str, dict[str, Any]] = {}
        for batch in result.fresh:
            run, rank = batch.id.run, batch.id.rank
            per_run = series[run]
            for chunk in batch.metrics:
                parts = per_run.setdefault((chunk.key, rank), [[], [], []])
                parts[0].append(chunk.steps)
                parts[1].append(chunk.values)
                parts[2].append(chunk.times)
            if batch.status or batch.params or batch.tags or batch.meta:
                change = changes.setdefault(run, {})
                if batch.status:
                    change.setdefault("status", []).extend([s, at] for s, at in batch.status)
                for name, items in (("params", batch.params), ("tags", batch.tags), ("meta", batch.meta)):
                    if items:
                        change[name] = sorted({*change.get(name, ()), *map(str, items)})
        for run in result.new_runs:
            changes.setdefault(run, {})["new"] = True
        out: list[tuple[str, bytes]] = []
        for run in sorted(set(series) | set(changes)):
            self._counts[run] += 1
            body: dict[str, Any] = {"v": VERSION, "run": run, "src": self.source, "n": self._counts[run]}
            if self._listened.get(run, False):
                body["series"] = [
                    {"key": key, "rank": rank, "steps": b"".join(s), "values": b"".join(v), "times": b"".join(t)}
                    for (key, rank), (s, v, t) in series.get(run, {}).items()
                ]
            elif run in series:
                body["omitted"] = True
            if run in changes:
                body["change"] = changes[run]
                out.append((self.keys.live_runs, _pack({"run": run, **changes[run]})))
            out.append((self.keys.live(run), _pack(body)))
        return out

    def heard(self, messages: list[tuple[str, bytes]], replies: list[Any]) -> None:
        """Learn from PUBLISH replies (receivers) which runs have subscribers: a run nobody
        follows gets its points left out (``omitted``), so that publishing costs ingest next to
        nothing; the first subscriber backfills once from the store and gets points after that."""
        for (channel, _), reply in zip(messages, replies):
            run = channel.removeprefix(self.keys.live(""))
            if channel != self.keys.live_runs and run in self._counts and isinstance(reply, int):
                self._listened[run] = reply > 0

    def notices(self, result: IngestResult) -> list[tuple[str, bytes]]:
        """The commit notice of every run whose watermark this commit set (agents wait on it)."""
        return [(self.keys.committed(run), b"1") for run in sorted({run for run, _, _ in result.watermarks})]


def _pack(body: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def decode(data: bytes) -> Commit:
    body = msgpack.unpackb(data, raw=False)
    run = str(body["run"])
    points = [
        Points(
            run,
            str(s["key"]),
            int(s["rank"]),
            np.frombuffer(s["steps"], dtype="<i8"),
            np.frombuffer(s["values"], dtype="<f8"),
            np.frombuffer(s["times"], dtype="<f8"),
        )
        for s in body.get("series", ())
    ]
    return Commit(run, str(body["src"]), int(body["n"]), points, body.get("change"), bool(body.get("omitted")))


# -- following (any reader) --------------------------------------------------------------------
class Source(Protocol):
    """Where backfills read from: an ``Api`` (a data dir, an HTTP URL, or a Store already open)."""

    def run(self, run_id: str) -> dict[str, Any]: ...
    def keys(self, run_id: str) -> list[str]: ...
    def series(self, run_id: str, key: str, *, rank: int | None = None, start: int | None = None) -> Window: ...


class Cursor:
    """What a follower has shown of one run: the last step per series, the last ``n`` per source."""

    def __init__(self, run_id: str, since_step: int | None = None) -> None:
        self.run_id = run_id
        self.since_step = since_step  # show only steps after this one
        self.last: dict[SeriesKey, int] = {}
        self._counts: dict[str, int] = {}

    def _floor(self, series: SeriesKey) -> int | None:
        last = self.last.get(series)
        if last is None:
            return self.since_step
        return last if self.since_step is None else max(last, self.since_step)

    def gap(self, commit: Commit) -> bool:
        """Records ``commit``'s counter; True if messages of its source were missed before it."""
        before = self._counts.get(commit.src)
        self._counts[commit.src] = commit.n
        return before is not None and commit.n != before + 1

    def take(self, points: Iterable[Points]) -> list[Points]:
        """The part of ``points`` not shown yet (steps past the last shown), marking it shown."""
        out = []
        for p in points:
            series = (p.key, p.rank)
            floor = self._floor(series)
            # a step is new when it is past the floor and every step before it in this message
            before = np.concatenate(([NO_STEP if floor is None else floor], p.steps[:-1]))
            keep = p.steps > np.maximum.accumulate(before)
            if not keep.all():
                p = Points(p.run, p.key, p.rank, p.steps[keep], p.values[keep], p.times[keep])
            if len(p):
                self.last[series] = int(p.steps.max())
                out.append(p)
        return out

    def backfill(self, source: Source) -> list[Points]:
        """What the store holds past what was shown, per series."""
        try:
            ranks = [int(r) for r in source.run(self.run_id)["ranks"]]
            keys = source.keys(self.run_id)
        except RunNotFoundError:
            return []
        found = []
        for key in keys:
            for rank in ranks:
                floor = self._floor((key, rank))
                try:
                    w = source.series(self.run_id, key, rank=rank, start=None if floor is None else floor + 1)
                except KeyNotFoundError:
                    continue
                times = w.times if w.times is not None else np.full(len(w.steps), np.nan)
                found.append(Points(self.run_id, key, rank, w.steps, w.values, times))
        return self.take(found)


def follow(
    client: str | redis.Redis,
    run_id: str,
    *,
    source: Source,
    prefix: str = "aquarium",
    since_step: int | None = None,
    stop: threading.Event | None = None,
    poll: float = 1.0,
    reconnect_delay: float = 0.5,
) -> Iterator[Points | RunChange]:
    """Yield ``run_id``'s points as they are committed (after what ``source`` already holds),
    and its run changes, until ``stop`` is set (checked every ``poll`` seconds) or the caller
    stops iterating. Reconnects to Redis by itself, backfilling what it missed from ``source``."""
    channel = RedisKeys(prefix).live(run_id)
    cursor = Cursor(run_id, since_step)
    stopped = stop or threading.Event()
    while not stopped.is_set():
        # a fresh connection each time: redis-py's own reconnect of a subscriber can leave it
        # connected but subscribed to nothing
        connection = _client(client)
        pubsub = connection.pubsub()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        try:
            pubsub.subscribe(channel)
            while not stopped.is_set():
                message = pubsub.get_message(timeout=poll)
                if message is None:
                    continue
                if message["type"] == "subscribe":  # (re)subscribed: anything may have been missed
                    yield from cursor.backfill(source)
                elif message["type"] == "message":
                    commit = decode(message["data"])
                    if cursor.gap(commit) or commit.omitted:  # the store holds this commit and what was missed
                        yield from cursor.backfill(source)
                    yield from cursor.take(commit.points)
                    if commit.change:
                        yield RunChange(run_id, commit.change)
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            stopped.wait(reconnect_delay)
        finally:
            pubsub.close()
            connection.close()


def _client(client: str | redis.Redis) -> redis.Redis:
    """A new client (own connection pool) for ``client``'s server, without retries inside
    redis-py: a lost connection must surface, so that ``follow`` backfills."""
    no_retry = Retry(NoBackoff(), 0)
    if isinstance(client, str):
        return redis.Redis.from_url(client, socket_connect_timeout=5.0, retry=no_retry)
    pool = client.connection_pool
    kwargs = {**pool.connection_kwargs, "retry": no_retry}
    return redis.Redis(connection_pool=redis.ConnectionPool(connection_class=pool.connection_class, **kwargs))
