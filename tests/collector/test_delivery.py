"""Delivery end to end: every point logged reaches the store exactly once, through Redis or the spool.

Each test logs known points and checks the store with a ledger checker (Jepsen ``set-full``
style): every logged (run, key, rank, step) must be stored with its last logged value, none
lost, none duplicated, none unexpected. Waits are bounded polls on a condition, never sleeps.
"""

from __future__ import annotations

import time
from pathlib import Path

import redis
from ledger import (
    KEYS,
    WAIT,
    CollectorThread,
    Ledger,
    burst,
    make_batch,
    pending,
    start_run,
    stream_seqs,
    value_of,
    wait_until,
)
from servers import FaultyRedis as RedisServer

from aquarium.agent.redis_keys import RedisKeys
from aquarium.agent.spool import SpoolHeader, SpoolWriter, segment_path
from aquarium.agent.wire import pack_batch
from aquarium.collector import Store


# -- the tests ---------------------------------------------------------------------------------
def test_happy_path_burst_collector_stores_every_point_once(
    redis_url: str, data_dir: Path, client: redis.Redis
) -> None:
    ledger = Ledger()
    runs = [
        start_run(redis_url, data_dir, run_id, rank=rank, world_size=2)
        for run_id in ("happy-a", "happy-b")
        for rank in range(2)
    ]
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
    with Store(data_dir) as store:
        ledger.check(store)
        assert store.get_run("happy-a")["status"] == "completed"
    # Without a collector at finish, everything was also kept in spool files: ingesting them
    # now is a replay of batches already shipped, and changes nothing.
    assert any(r.spooled_files for r in reports)
    with Store(data_dir) as store:
        store.ingest_spool()
        ledger.check(store)
    assert not list((data_dir / "spool").rglob("*.spool"))


def test_finish_reports_everything_committed_with_a_live_collector(
    redis_url: str, data_dir: Path, client: redis.Redis
) -> None:
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


def test_redis_down_at_init_spools_then_replays_in_seq_order(
    fresh_redis: RedisServer, data_dir: Path, tmp_path: Path
) -> None:
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
    wait_until(
        lambda: run.stats.batches_replayed >= spooled,
        lambda: f"replayed {run.stats.batches_replayed} of {spooled} spooled batches",
    )
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
    writer = SpoolWriter(
        segment_path(data_dir / "spool", "dup", 0, "inc-a", 0), SpoolHeader("dup", 0, "inc-a", time.time())
    )
    for batch in batches:
        writer.append(pack_batch(batch))
    writer.close()

    collector = burst(redis_url, data_dir)
    assert collector.stats.spool_batches == 10 and collector.stats.entries == 30
    assert collector.stats.stored == 0 and collector.stats.duplicates == 30  # the spool came first
    assert pending(client) == 0
    with Store(data_dir) as store:
        store.ingest_spool()
        ledger.check(store)
        assert store.get_run("dup")["incarnations"][0]["batches"] == 10


def test_memory_bound_spills_unconfirmed_batches_to_the_spool(
    redis_url: str, data_dir: Path, client: redis.Redis
) -> None:
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
    with Store(data_dir) as store:
        ledger.check(store)  # one value per step, the last logged; every logged point stored once
        series = store.read_series("relog", "x")
        assert series.steps.tolist() == list(range(12))
        assert series.values.tolist() == [
            0.0,
            1.0,
            2.0,
            300.0,
            4.0,
            105.0,
            106.0,
            107.0,
            1008.0,
            1009.0,
            1010.0,
            1011.0,
        ]
        assert store.get_run("relog")["metrics"]["x"]["count"] == 10 + 5 + 4


def test_batch_carrying_events_only_is_delivered(redis_url: str, data_dir: Path) -> None:
    """Params and status with no points still travel as batches and count in the ledger."""
    run = start_run(redis_url, data_dir, "events-only", config={"lr": 0.1})
    run.set_tags({"kind": "smoke"})
    report = run.finish("completed", timeout=WAIT)
    assert report.points == 0 and report.last_seq >= 0
    burst(redis_url, data_dir, ingest_spool=False)
    with Store(data_dir) as store:
        stored = store.get_run("events-only")
        assert stored["params"] == {"lr": 0.1} and stored["tags"] == {"kind": "smoke"}
        assert stored["status"] == "completed" and stored["incarnations"][0]["missing"] == 0
        assert stored["metrics"] == {}
