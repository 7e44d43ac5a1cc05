"""Helpers of the delivery, fault and collector tests: a ledger checker (Jepsen ``set-full``
style), bounded waits, collectors in threads, hand-made batches."""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis

import aquarium.agent as aq
from aquarium.agent.redis_keys import RedisKeys
from aquarium.agent.wire import Batch, BatchId, MetricChunk, unpack_batch
from aquarium.collector import Collector, CollectorSettings, Store

KEYS = RedisKeys()
WAIT = 30.0  # the longest any condition may take before the test fails


def wait_until(condition: Callable[[], Any], what: str | Callable[[], str], timeout: float = WAIT) -> Any:
    """Poll ``condition`` until it is truthy; fail naming ``what`` if it is not within ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout:.0f}s: {what() if callable(what) else what}")
        time.sleep(0.02)


@dataclass
class Ledger:
    """What a test logged: per (run, key, rank) the last value of each step, and how many points."""

    expected: dict[tuple[str, str, int], dict[int, float]] = field(default_factory=lambda: defaultdict(dict))
    logged: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))

    def log(self, run: aq.Run, step: int, value: float | None = None, key: str = "x") -> None:
        value = value_of(step, run.rank) if value is None else value
        run.log({key: value}, step=step)
        self.record(run.id, key, run.rank, step, value)

    def record(self, run_id: str, key: str, rank: int, step: int, value: float) -> None:
        self.expected[(run_id, key, rank)][step] = value
        self.logged[(run_id, key)] += 1

    def check(self, store: Store, allow_gaps: bool = False) -> None:
        """Fail listing every lost, duplicated, unexpected or wrong point, and every seq gap."""
        problems: list[str] = []
        for (run_id, key, rank), want in sorted(self.expected.items()):
            series = store.read_series(run_id, key, rank)
            got = dict(zip(series.steps.tolist(), series.values.tolist()))
            lost = sorted(set(want) - set(got))
            unexpected = sorted(set(got) - set(want))
            wrong = sorted(s for s in set(want) & set(got) if not same_value(got[s], want[s]))
            if len(series.steps) != len(got):
                problems.append(f"{run_id}/{key}/{rank}: a step read back twice")
            for name, steps in (("lost", lost), ("unexpected", unexpected), ("wrong value", wrong)):
                if steps:
                    problems.append(f"{run_id}/{key}/{rank}: {len(steps)} {name}, e.g. steps {steps[:5]}")
        for (run_id, key), count in sorted(self.logged.items()):
            stored = store.get_run(run_id)["metrics"].get(key, {}).get("count", 0)
            if stored != count:
                problems.append(
                    f"{run_id}/{key}: {count} points logged, {stored} stored "
                    f"({'duplicated' if stored > count else 'lost'})"
                )
        for run_id in sorted({r for r, _ in self.logged} if not allow_gaps else ()):
            for inc in store.get_run(run_id)["incarnations"]:
                if inc["missing"]:
                    problems.append(f"{run_id}: rank {inc['rank']} {inc['incarnation']} misses {inc['missing']} seqs")
        assert not problems, "ledger check failed:\n  " + "\n  ".join(problems)


def same_value(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


def value_of(step: int, rank: int) -> float:
    """Every point's value tells its step and rank apart, exactly representable."""
    return float(step + 1_000_000 * rank)


def collector_settings(redis_url: str, data_dir: Path, **overrides: Any) -> CollectorSettings:
    return CollectorSettings.from_env(redis_url=redis_url, data_dir=data_dir, **overrides)


def burst(redis_url: str, data_dir: Path, **overrides: Any) -> Collector:
    """Drain the stream once with a fresh collector; returns it closed, with its stats."""
    collector = Collector(collector_settings(redis_url, data_dir, **overrides))
    try:
        collector.run(burst=True)
    finally:
        collector.close()
    return collector


class CollectorThread:
    """A collector running ``run()`` in a background thread until the ``with`` block ends."""

    def __init__(self, redis_url: str, data_dir: Path, **overrides: Any) -> None:
        self.collector = Collector(collector_settings(redis_url, data_dir, **overrides))
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="test-collector", daemon=True)

    def _run(self) -> None:
        try:
            self.collector.run()
        except BaseException as e:  # re-raised in the test's thread on exit
            self.error = e

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def __enter__(self) -> "CollectorThread":
        self._thread.start()
        try:
            wait_until(lambda: self.collector.stats.reads or self.error, "the collector reads the stream")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.collector.stop()
        self._thread.join(WAIT)
        stuck = self._thread.is_alive()
        if not stuck:
            self.collector.close()
        if self.error is not None:
            raise AssertionError(f"the collector thread died: {self.error!r}") from self.error
        assert not stuck, "the collector thread did not stop"


_started: list[aq.Run] = []


def start_run(
    redis_url: str, data_dir: Path, run_id: str, rank: int = 0, world_size: int = 1, **settings: Any
) -> aq.Run:
    settings.setdefault("commit_wait", 20.0)
    settings.setdefault("finish_timeout", WAIT)
    run = aq.init(
        experiment="delivery",
        run_id=run_id,
        rank=rank,
        world_size=world_size,
        redis_url=redis_url,
        data_dir=data_dir,
        **settings,
    )
    _started.append(run)
    return run


def finish_started_runs() -> None:
    """Finish what a failed test left running, so no shipper thread outlives its test."""
    while _started:
        _started.pop().finish(timeout=WAIT)  # a finished run just returns its report


def make_batch(
    run_id: str,
    seq: int,
    steps: list[int],
    *,
    rank: int = 0,
    inc: str = "inc-a",
    key: str = "x",
    values: list[float] | None = None,
) -> Batch:
    values = [value_of(s, rank) for s in steps] if values is None else values
    chunk = MetricChunk(
        key, array("q", steps).tobytes(), array("d", values).tobytes(), array("d", [1.7e9 + s for s in steps]).tobytes()
    )
    return Batch(BatchId(run_id, rank, inc, seq), [chunk])


def stream_seqs(r: redis.Redis, run_id: str, rank: int = 0) -> list[int]:
    """The seqs of one rank's batches in stream order."""
    seqs = []
    for _, fields in r.xrange(KEYS.stream):
        batch = unpack_batch(fields[b"b"])
        if (batch.id.run, batch.id.rank) == (run_id, rank):
            seqs.append(batch.id.seq)
    return seqs


def pending(r: redis.Redis) -> int:
    return int(r.xpending(KEYS.stream, KEYS.group)["pending"])
