"""Delivery end to end: every point logged reaches the store exactly once, through Redis or the spool.

Each test logs known points and checks the store with a ledger checker (Jepsen ``set-full``
style): every logged (run, key, rank, step) must be stored with its last logged value, none
lost, none duplicated, none unexpected. Waits are bounded polls on a condition, never sleeps.
The helpers here are shared with the fault and collector tests.
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import redis

import aquarium.agent as aq
from aquarium.agent.redis_keys import RedisKeys
from aquarium.agent.spool import SpoolHeader, SpoolWriter, segment_path
from aquarium.agent.wire import Batch, BatchId, MetricChunk, pack_batch, unpack_batch
from aquarium.collector import Collector, CollectorSettings, Store
from aquarium.collector.redis_server import RedisServer

KEYS = RedisKeys()
WAIT = 30.0  # the longest any condition may take before the test fails


# -- helpers shared by the delivery, fault and collector tests ---------------------------------
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
                problems.append(f"{run_id}/{key}: {count} points logged, {stored} stored "
                                f"({'duplicated' if stored > count else 'lost'})")
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


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


_started: list[aq.Run] = []


def start_run(redis_url: str, data_dir: Path, run_id: str, rank: int = 0, world_size: int = 1,
              **settings: Any) -> aq.Run:
    settings.setdefault("commit_wait", 20.0)
    settings.setdefault("finish_timeout", WAIT)
    run = aq.init(experiment="delivery", run_id=run_id, rank=rank, world_size=world_size,
                  redis_url=redis_url, data_dir=data_dir, **settings)
    _started.append(run)
    return run


def finish_started_runs() -> None:
    """Finish what a failed test left running, so no shipper thread outlives its test."""
    while _started:
        _started.pop().finish(timeout=WAIT)  # a finished run just returns its report


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test() -> Iterator[None]:
    yield
    finish_started_runs()


def make_batch(run_id: str, seq: int, steps: list[int], *, rank: int = 0, inc: str = "inc-a",
               key: str = "x", values: list[float] | None = None) -> Batch:
    values = [value_of(s, rank) for s in steps] if values is None else values
    chunk = MetricChunk(key, array("q", steps).tobytes(), array("d", values).tobytes(),
                        array("d", [1.7e9 + s for s in steps]).tobytes())
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


# -- the tests ---------------------------------------------------------------------------------
def test_happy_path_burst_collector_stores_every_point_once(redis_url: str, data_dir: Path,
                                                            client: redis.Redis) -> None:
    ledger = Ledger()
    runs = [start_run(redis_url, data_dir, run_id, rank=rank, world_size=2)
            for run_id in ("happy-a", "happy-b") for rank in range(2)]
    for step in range(3000):
        for run in runs:
            ledger.log(run, step)
    reports = [run.finish(timeout=WAIT) for run in runs]
    assert all(not r.timed_out and r.dropped_points == 0 and r.points == 3000 for r in reports)

    collector = burst(redis_url, data_dir, ingest_spool=False)  # the stream alone must hold everything
    assert collector.stats.dead_letters == 0 and collector.stats.stored == sum(r.last_seq + 1 for r in reports)
    assert pending(client) == 0
    for run, report in zip(runs, reports):
        field_name = RedisKeys.watermark_field(run.rank, run.identity.incarnation)
        assert int(client.hget(KEYS.watermarks(run.id), field_name)) == report.last_seq
    with Store(data_dir, ingest_spool=False) as store:
        ledger.check(store)
        assert store.get_run("happy-a")["status"] == "completed"
    # Without a collector at finish, everything was also kept in spool files: ingesting them
    # now is a replay of batches already shipped, and changes nothing.
    assert any(r.spooled_files for r in reports)
    with Store(data_dir) as store:
        ledger.check(store)
    assert not list((data_dir / "spool").rglob("*.spool"))


def test_finish_reports_everything_committed_with_a_live_collector(redis_url: str, data_dir: Path,
                                                                   client: redis.Redis) -> None:
    ledger = Ledger()
    with CollectorThread(redis_url, data_dir) as running:
        runs = [start_run(redis_url, data_dir, "live", rank=rank, world_size=2) for rank in range(2)]
        for step in range(500):
            for run in runs:
                ledger.log(run, step)
        reports = [run.finish(timeout=WAIT) for run in runs]
        for report in reports:  # finish waited for the commit, so the store holds everything now
            assert report.committed_seq == report.last_seq, report
            assert report.spooled_files == [] and not report.timed_out
        ledger.check(running.collector.store)
    assert pending(client) == 0


def test_a_short_run_waits_for_the_live_collector_at_finish(redis_url: str, data_dir: Path) -> None:
    """A run that ends before the shipper ever saw a watermark still waits for the commit."""
    ledger = Ledger()
    with CollectorThread(redis_url, data_dir) as running:
        run = start_run(redis_url, data_dir, "short")
        ledger.log(run, 0)
        report = run.finish(timeout=WAIT)
        ledger.check(running.collector.store)
    assert report.committed_seq == report.last_seq and report.spooled_files == [], report


def test_redis_down_at_init_spools_then_replays_in_seq_order(fresh_redis: RedisServer, data_dir: Path,
                                                             tmp_path: Path) -> None:
    fresh_redis.kill()  # nothing listens on its port now
    ledger = Ledger()
    run = start_run(fresh_redis.url, data_dir, "offline-start")  # returns: connecting is the shipper's job
    for step in range(2000):
        ledger.log(run, step)
        if step % 500 == 499:
            assert run.flush(timeout=WAIT)  # several cuts, several batches
    assert run.stats.batches_spooled >= 4 and run.stats.batches_sent == 0
    assert list((data_dir / "spool" / "offline-start").glob("*.spool"))

    fresh_redis.start()
    spooled = run.stats.batches_spooled
    wait_until(lambda: run.stats.batches_replayed >= spooled,
               lambda: f"replayed {run.stats.batches_replayed} of {spooled} spooled batches")
    r = redis.Redis.from_url(fresh_redis.url)
    try:
        assert stream_seqs(r, "offline-start") == list(range(spooled))  # replayed in seq order
        with CollectorThread(fresh_redis.url, data_dir, ingest_spool=False) as running:
            for step in range(2000, 2500):  # and back online
                ledger.log(run, step)
            report = run.finish(timeout=WAIT)
            assert report.committed_seq == report.last_seq and report.spooled_files == [], report
            ledger.check(running.collector.store)
    finally:
        r.close()


def test_duplicate_deliveries_are_stored_once(client: redis.Redis, redis_url: str, data_dir: Path) -> None:
    ledger = Ledger()
    batches = []
    for seq in range(10):
        steps = list(range(seq * 100, seq * 100 + 100))
        batches.append(make_batch("dup", seq, steps))
        for step in steps:
            ledger.record("dup", "x", 0, step, value_of(step, 0))
    for _ in range(3):  # an agent resending after ambiguous replies
        for batch in batches:
            client.xadd(KEYS.stream, {"b": pack_batch(batch)})
    # ... and the same batches in a spool file, as when an agent spooled what it had shipped
    writer = SpoolWriter(segment_path(data_dir / "spool", "dup", 0, "inc-a", 0),
                         SpoolHeader("dup", 0, "inc-a", time.time()))
    for batch in batches:
        writer.append(pack_batch(batch))
    writer.close()

    collector = burst(redis_url, data_dir)
    assert collector.stats.spool_batches == 10 and collector.stats.entries == 30
    assert collector.stats.stored == 0 and collector.stats.duplicates == 30  # the spool came first
    assert pending(client) == 0
    with Store(data_dir) as store:
        ledger.check(store)
        assert store.get_run("dup")["incarnations"][0]["batches"] == 10


def test_memory_bound_spills_unconfirmed_batches_to_the_spool(redis_url: str, data_dir: Path,
                                                              client: redis.Redis) -> None:
    ledger = Ledger()
    run = start_run(redis_url, data_dir, "tiny-memory", max_memory_bytes=10_000)
    for step in range(6000):
        ledger.log(run, step)
        if step % 1000 == 999:
            assert run.flush(timeout=WAIT)
    spool = data_dir / "spool" / "tiny-memory"
    wait_until(lambda: list(spool.glob("*.spool")), "unconfirmed batches spilled to the spool")
    assert run.stats.batches_sent > 0 and run.stats.dropped_points == 0  # shipped, and kept on disk too
    with CollectorThread(redis_url, data_dir, ingest_spool=False) as running:
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)
    assert not list(spool.glob("*.spool"))  # confirmed, so the spill files are gone


def test_relogged_steps_keep_the_last_value_across_a_restart(redis_url: str, data_dir: Path) -> None:
    ledger = Ledger()
    first = start_run(redis_url, data_dir, "relog")
    for step in range(10):
        ledger.log(first, step, float(step))
    assert first.flush(timeout=WAIT)
    for step in (7, 6, 5, 3):  # the step goes backwards and re-logs, in a later batch
        ledger.log(first, step, 100.0 + step)
    ledger.log(first, 3, 300.0)  # and twice in the same batch
    first.finish(timeout=WAIT)
    again = start_run(redis_url, data_dir, "relog")  # the restarted process: a new incarnation
    assert again.identity.incarnation > first.identity.incarnation
    for step in range(8, 12):
        ledger.log(again, step, 1000.0 + step)
    again.finish(timeout=WAIT)

    burst(redis_url, data_dir, ingest_spool=False)
    with Store(data_dir, ingest_spool=False) as store:
        ledger.check(store)  # one value per step, the last logged; every logged point stored once
        series = store.read_series("relog", "x")
        assert series.steps.tolist() == list(range(12))
        assert series.values.tolist() == [0.0, 1.0, 2.0, 300.0, 4.0, 105.0, 106.0, 107.0,
                                          1008.0, 1009.0, 1010.0, 1011.0]
        assert store.get_run("relog")["metrics"]["x"]["count"] == 10 + 5 + 4


def test_batch_carrying_events_only_is_delivered(redis_url: str, data_dir: Path) -> None:
    """Params and status with no points still travel as batches and count in the ledger."""
    run = start_run(redis_url, data_dir, "events-only", config={"lr": 0.1})
    run.set_tags({"kind": "smoke"})
    report = run.finish("completed", timeout=WAIT)
    assert report.points == 0 and report.last_seq >= 0
    burst(redis_url, data_dir, ingest_spool=False)
    with Store(data_dir, ingest_spool=False) as store:
        stored = store.get_run("events-only")
        assert stored["params"] == {"lr": 0.1} and stored["tags"] == {"kind": "smoke"}
        assert stored["status"] == "completed" and stored["incarnations"][0]["missing"] == 0
        assert stored["metrics"] == {}
