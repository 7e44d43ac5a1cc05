"""Accepted = stored + reported dropped, whatever fails after the call site.

Each test logs known points through a real redis-server into a real collector, injects one
failure (a batch that cannot be packed, a full disk at write, fsync or close) and checks the
store against the ledger and the agent's count of dropped points.
"""

from __future__ import annotations

import errno
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from ledger import WAIT, CollectorThread, Ledger, make_batch, start_run, value_of, wait_until
from servers import FaultyRedis, redis_binary

from aquarium.agent import cutter
from aquarium.agent.errors import RunNotFoundError
from aquarium.agent.spool import SpoolHeader, SpoolWriter, segment_path
from aquarium.agent.wire import Batch, pack_batch
from aquarium.collector import Store


def stored_points(store: Store, run_id: str, key: str = "x") -> int:
    """0 for a run the collector has not stored yet (a wait_until on it keeps polling)."""
    try:
        return int(store.get_run(run_id)["metrics"].get(key, {}).get("count", 0))
    except RunNotFoundError:
        return 0


def disk_full(*args: Any) -> None:
    raise OSError(errno.ENOSPC, "No space left on device")


def test_an_unexpected_packing_failure_counts_its_points_and_leaves_no_seq_gap(
    redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_pack = cutter.pack_batch

    def surrogate_in_seq_1(batch: Batch) -> bytes:
        if batch.id.seq == 1 and batch.metrics:
            raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
        return real_pack(batch)

    monkeypatch.setattr(cutter, "pack_batch", surrogate_in_seq_1)
    ledger = Ledger()
    with CollectorThread(redis_url, data_dir, ingest_spool=False) as running:
        run = start_run(redis_url, data_dir, "unpackable", flush_interval=3600.0)
        lost = 0
        for chunk in range(3):
            for step in range(chunk * 100, chunk * 100 + 100):
                if chunk == 1:
                    run.log({"x": value_of(step, 0)}, step=step)  # accepted, then lost in packing
                    lost += 1
                else:
                    ledger.log(run, step)
            assert run.flush(timeout=WAIT)
        # a step past int64 that reached the queue from another thread: counted, never silent
        run._shipper.other_threads.append((2**63, 0.0, ("x",), (1.0,)))
        lost += 1
        for step in range(300, 400):
            ledger.log(run, step)
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq, report  # the failed batch left no gap
        assert report.dropped_points == lost and report.points == 300 + lost
        stored = stored_points(running.collector.store, "unpackable")
        assert stored + report.dropped_points == 400 + 1
        ledger.check(running.collector.store)
    assert run.stats.last_error.startswith("pack") or "other-thread" in run.stats.last_error


def test_a_full_disk_never_drops_what_reached_redis_nor_freezes_the_watermark(
    redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tiny memory bound spills shipped batches to the spool; the disk refuses them all."""
    monkeypatch.setattr(SpoolWriter, "_write", disk_full)
    ledger = Ledger()
    with CollectorThread(redis_url, data_dir, ingest_spool=False) as running:
        run = start_run(redis_url, data_dir, "full-disk-online", max_memory_bytes=10_000)
        for step in range(5000):
            ledger.log(run, step)
            if step % 1000 == 999:
                assert run.flush(timeout=WAIT)
        report = run.finish(timeout=WAIT)
        assert report.dropped_points == 0 and report.committed_seq == report.last_seq, report
        ledger.check(running.collector.store)


def test_enospc_at_fsync_and_close_is_counted_exactly(
    fresh_redis: FaultyRedis, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis is down, so everything goes to the spool; its fsync fails for the second half."""
    fresh_redis.kill()
    run = start_run(fresh_redis.url, data_dir, "full-disk-fsync", flush_interval=3600.0)
    ledger = Ledger()
    for step in range(1000):
        ledger.log(run, step)
    assert run.flush(timeout=WAIT)  # spooled and synced
    monkeypatch.setattr(SpoolWriter, "_sync", disk_full)
    for step in range(1000, 2000):
        run.log({"x": value_of(step, 0)}, step=step)
    assert run.flush(timeout=WAIT)  # fsync fails: kept in memory, nothing counted yet
    assert run.stats.dropped_points == 0
    report = run.finish(timeout=WAIT)  # close's fsync fails too: these are lost, and counted
    assert report.dropped_points == 1000, report
    monkeypatch.undo()
    fresh_redis.start()
    with CollectorThread(fresh_redis.url, data_dir) as running:  # ingests the spool as it starts
        store = running.collector.store
        assert stored_points(store, "full-disk-fsync") + report.dropped_points == 2000
        ledger.check(store, allow_gaps=True)


def test_a_requeued_process_replays_the_dead_incarnations_spool(redis_url: str, data_dir: Path) -> None:
    """SLURM requeue: the same run id, a new incarnation; the dead one's spool file is free."""
    ledger = Ledger()
    orphan = segment_path(data_dir / "spool", "requeued", 0, "inc-a", 0)
    dead = SpoolWriter(orphan, SpoolHeader("requeued", 0, "inc-a", 0.0))
    for seq in range(5):
        steps = list(range(seq * 10, seq * 10 + 10))
        dead.append(pack_batch(make_batch("requeued", seq, steps, inc="inc-a")))
        for step in steps:
            ledger.record("requeued", "x", 0, step, value_of(step, 0))
    dead.close()  # the process died: its lock is free
    with CollectorThread(redis_url, data_dir, ingest_spool=False) as running:  # only the agent brings it
        run = start_run(redis_url, data_dir, "requeued")
        for step in range(50, 100):
            ledger.log(run, step)
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)
    assert not orphan.exists()


def aof_redis(tmp_path: Path) -> FaultyRedis:
    """A redis-server that fsyncs every write to its AOF: a kill -9 loses nothing it acked."""
    return FaultyRedis(
        data_dir=tmp_path / "redis-aof",
        binary=redis_binary(),
        extra_args=["--appendonly", "yes", "--appendfsync", "always"],
    )


def log_sent_then_parked(run: Any, redis: FaultyRedis, ledger: Ledger) -> None:
    """Steps 0-499 reach Redis (no collector confirms them); Redis dies; 500-799 stay in memory
    because the disk is full."""
    for step in range(500):
        ledger.log(run, step)
    assert run.flush(timeout=WAIT)
    assert run.stats.batches_sent > 0
    redis.kill()
    for step in range(500, 800):
        ledger.log(run, step)
    assert run.flush(timeout=WAIT)


def test_finishing_on_a_full_disk_waits_for_redis_to_come_back(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Soak seed 9: a full disk and a Redis restart from its AOF at finish. The batches only in
    memory wait for Redis (up to commit_wait) instead of being counted dropped although stored."""
    redis = aof_redis(tmp_path)
    redis.start()
    try:
        monkeypatch.setattr(SpoolWriter, "_write", disk_full)
        ledger = Ledger()
        run = start_run(redis.url, data_dir, "last-chance", flush_interval=3600.0, commit_wait=30.0)
        log_sent_then_parked(run, redis, ledger)
        reports: list[Any] = []
        finishing = threading.Thread(target=lambda: reports.append(run.finish(timeout=60.0)))
        finishing.start()
        time.sleep(1.0)  # finish() found Redis down and the disk full; then Redis comes back
        # (started from this thread: the server dies with the thread that started it)
        redis.start()
        with CollectorThread(redis.url, data_dir, ingest_spool=False) as running:
            finishing.join(60.0)
            assert reports, "finish() did not return"
            report = reports[0]
            ledger.check(running.collector.store)
        assert (report.dropped_points, report.unconfirmed_points) == (0, 0), report
        assert report.committed_seq == report.last_seq, report
    finally:
        redis.stop()


def test_what_reached_redis_but_not_the_disk_is_unconfirmed_not_dropped(
    tmp_path: Path, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis stays down past commit_wait: the never-sent batches are dropped and counted; the
    sent ones are reported unconfirmed, and Redis restarted from its AOF does deliver them."""
    redis = aof_redis(tmp_path)
    redis.start()
    try:
        monkeypatch.setattr(SpoolWriter, "_write", disk_full)
        run = start_run(redis.url, data_dir, "unconfirmed", flush_interval=3600.0, commit_wait=0.5)
        log_sent_then_parked(run, redis, Ledger())
        report = run.finish(timeout=WAIT)
        assert report.points == 800
        assert report.dropped_points == 300, report
        assert report.unconfirmed_points == 500, report
        redis.start()  # from the AOF: steps 0-499 are still in the stream
        with CollectorThread(redis.url, data_dir, ingest_spool=False) as running:
            store = running.collector.store
            wait_until(lambda: stored_points(store, "unconfirmed") == 500, "the AOF's batches are committed")
            steps = store.read_series("unconfirmed", "x").steps
            assert list(steps) == list(range(500))
    finally:
        redis.stop()


def test_flush_says_false_when_the_cycle_that_answered_it_failed(
    redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shipper bug is logged and shipping goes on, but the flush it answered did not ship."""
    run = start_run(redis_url, data_dir, "failed-flush", flush_interval=3600.0, commit_wait=0.0)
    real_cycle = run._shipper._cycle
    calls: list[bool] = []

    def fails_once(catch_up: bool) -> None:
        calls.append(catch_up)
        if len(calls) == 1:
            raise RuntimeError("a bug in the cycle")
        real_cycle(catch_up)

    monkeypatch.setattr(run._shipper, "_cycle", fails_once)
    run.log({"x": 1.0}, step=0)
    assert run.flush(timeout=WAIT) is False
    assert "a bug in the cycle" in run.stats.last_error
    assert run.flush(timeout=WAIT) is True  # the next cycle ships what the failed one left
    report = run.finish(timeout=WAIT)
    assert report.points == 1 and report.dropped_points == 0


def test_batches_cut_before_a_failure_in_the_cycle_are_shipped_later_not_lost(
    redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cycle raises after cutting (a bug in the link): the batches it cut stay in memory and
    the next cycle ships them — every point stored, none dropped, no seq gap."""
    ledger = Ledger()
    with CollectorThread(redis_url, data_dir, ingest_spool=False) as running:
        run = start_run(redis_url, data_dir, "cut-then-fail", flush_interval=3600.0)
        for step in range(100):
            ledger.log(run, step)
        assert run.flush(timeout=WAIT)
        link = run._shipper._link
        real_connect = link.connect
        calls: list[bool] = []

        def fails_once(wait: bool) -> Any:
            calls.append(wait)
            if len(calls) == 1:
                raise RuntimeError("a bug in connect")
            return real_connect(wait=wait)

        monkeypatch.setattr(link, "connect", fails_once)
        for step in range(100, 300):
            ledger.log(run, step)
        assert run.flush(timeout=WAIT) is False  # the cycle that cut steps 100-299 failed
        assert run.flush(timeout=WAIT) is True
        report = run.finish(timeout=WAIT)
        assert report.dropped_points == 0 and report.committed_seq == report.last_seq, report
        wait_until(lambda: stored_points(running.collector.store, "cut-then-fail") == 300, "all 300 points stored")
        ledger.check(running.collector.store)


def test_a_failed_cut_counts_the_points_and_artifact_records_it_took(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from collections import deque

    from aquarium.agent.batcher import PointQueue
    from aquarium.agent.identity import Identity
    from aquarium.agent.stats import ShipperStats

    points, events, stats = PointQueue(), deque(), ShipperStats()
    drops: list[tuple[int, str]] = []
    points.append_entries([(s, 1.7e9, ("x",), (float(s),)) for s in range(5)])
    events.extend([("status", ("running", 1.7e9)), ("artifacts", object()), ("params", {"lr": 0.1})])
    cut = cutter.Cutter(
        points, deque(), events, Identity("r", 0, 1, "inc", "h", 1), {}, stats, lambda n, why, e: drops.append((n, why))
    )

    def broken(*args: Any) -> list[Batch]:
        raise OverflowError("boom")

    monkeypatch.setattr(cutter.batcher, "cut", broken)
    assert cut.cut() == []
    assert drops == [(5, "cut")] and stats.points == 5  # taken and counted as dropped
    assert stats.artifacts_dropped == 1 and not events  # the record left the deque: it is counted
    assert "artifacts/meta/params/status not cut (boom); dropped" in caplog.text
