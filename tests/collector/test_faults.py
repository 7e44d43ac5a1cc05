"""Fault injection: Redis killed, restarted empty or paused, a collector SIGKILLed mid-ingest.

Every test ends with the ledger check: nothing lost, nothing duplicated. The training thread's
``log()`` must keep returning whatever Redis does; that is checked functionally (the calls
complete while Redis is down or paused), never against a clock.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from ledger import (
    KEYS,
    WAIT,
    CollectorThread,
    Ledger,
    collector_settings,
    finish_started_runs,
    make_batch,
    pending,
    start_run,
    value_of,
    wait_until,
)
from servers import FaultyRedis as RedisServer

import aquarium.agent as aq
from aquarium.agent import shipper
from aquarium.agent.wire import pack_batch
from aquarium.collector import Collector, Store


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test() -> Iterator[None]:
    yield
    finish_started_runs()


def log_steps(ledger: Ledger, runs: list[aq.Run], steps: range) -> None:
    for step in steps:
        for run in runs:
            ledger.log(run, step)


def committed_all(run: aq.Run) -> bool:
    """Seqs are contiguous from 0, so this run's batches so far are seqs 0 .. batches - 1."""
    return run.stats.committed_seq == run.stats.batches - 1


def test_redis_restarted_empty_while_a_collector_runs(fresh_redis: RedisServer, data_dir: Path) -> None:
    ledger = Ledger()
    with CollectorThread(fresh_redis.url, data_dir, ingest_spool=False) as running:
        runs = [start_run(fresh_redis.url, data_dir, "restart", rank=rank, world_size=2) for rank in range(2)]
        log_steps(ledger, runs, range(0, 1000))
        assert all(run.flush(timeout=WAIT) for run in runs)
        wait_until(lambda: all(committed_all(run) for run in runs), "the first steps committed")
        log_steps(ledger, runs, range(1000, 2000))
        assert all(run.flush(timeout=WAIT) for run in runs)  # XADDed; maybe read, maybe not
        fresh_redis.kill()
        log_steps(ledger, runs, range(2000, 3000))  # log() keeps returning with Redis gone
        assert all(run.flush(timeout=WAIT) for run in runs)
        fresh_redis.start()  # the same port, an empty server: stream, group and watermarks are gone
        log_steps(ledger, runs, range(3000, 4000))
        reports = [run.finish(timeout=WAIT) for run in runs]
        for report in reports:
            assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)
        assert running.alive
    r = redis.Redis.from_url(fresh_redis.url)
    try:
        assert pending(r) == 0  # the collector recreated its group on the new server
    finally:
        r.close()


def test_uncommitted_batches_are_resent_after_redis_comes_back_empty(fresh_redis: RedisServer, data_dir: Path) -> None:
    """An XADD reply is not a durable ack: what no collector committed is resent to the new server."""
    ledger = Ledger()
    run = start_run(fresh_redis.url, data_dir, "resend")
    log_steps(ledger, [run], range(0, 1000))
    assert run.flush(timeout=WAIT)
    assert run.stats.batches_sent > 0 and run.stats.committed_seq == -1  # only in Redis' memory
    fresh_redis.kill()
    fresh_redis.start()
    log_steps(ledger, [run], range(1000, 2000))
    with CollectorThread(fresh_redis.url, data_dir, ingest_spool=False) as running:
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)
    assert run.stats.batches_resent > 0


def test_spilled_batches_are_resent_after_an_unnoticed_redis_restart(
    fresh_redis: RedisServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis restarts between two cycles: redis-py reconnects silently, the run_id check notices.

    With a tiny memory bound, batches spill to the spool as "sent"; the resend must still replay
    them, also when the XADD that noticed the restart spills more batches behind them.
    """
    monkeypatch.setattr(shipper, "RUN_ID_CHECK_SECONDS", 0.0)  # check at every send
    monkeypatch.setattr(shipper, "REPLAY_CHUNK_BYTES", 1)  # one batch a replay: the resend spans cycles
    ledger = Ledger()
    # The shipper cycles only when flush() wakes it, so nothing touches Redis while it restarts.
    run = start_run(fresh_redis.url, data_dir, "silent-restart", max_memory_bytes=10_000, flush_interval=3600.0)
    for chunk in range(5):
        log_steps(ledger, [run], range(chunk * 500, chunk * 500 + 500))
        assert run.flush(timeout=WAIT)
        if chunk == 3:
            assert run.stats.batches_sent == run.stats.batches and run.stats.redis_errors == 0
            fresh_redis.kill()
            fresh_redis.start()
    assert run.stats.redis_errors == 0  # the restart went unnoticed by redis-py
    with CollectorThread(fresh_redis.url, data_dir, ingest_spool=False) as running:
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)


def test_a_spool_a_collector_already_ingested_is_dropped_once_replayed(
    fresh_redis: RedisServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The collector ingested the live spool at startup; the agent's replay then changes nothing."""
    monkeypatch.setattr(shipper, "REPLAY_CHUNK_BYTES", 1)  # one batch a replay
    fresh_redis.kill()
    ledger = Ledger()
    run = start_run(fresh_redis.url, data_dir, "pre-ingested", flush_interval=3600.0)
    for chunk in range(3):
        log_steps(ledger, [run], range(chunk * 500, chunk * 500 + 500))
        assert run.flush(timeout=WAIT)
    spool = data_dir / "spool" / "pre-ingested"
    assert run.stats.batches_spooled == 3 and len(list(spool.glob("*.spool"))) == 1
    fresh_redis.start()
    with CollectorThread(fresh_redis.url, data_dir) as running:  # reads the live spool as it starts
        ledger.check(running.collector.store)
        # The agent replays (once its reconnect backoff allows), and hears a watermark covering it all.
        wait_until(lambda: run.flush(timeout=WAIT) and run.stats.batches_replayed == 3, "the spool replayed")
        wait_until(
            lambda: run.flush(timeout=WAIT) and not list(spool.glob("*.spool")), "the replayed, committed spool dropped"
        )
        assert run.stats.committed_seq == 2
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)


def test_redis_paused_never_blocks_log_and_everything_arrives(fresh_redis: RedisServer, data_dir: Path) -> None:
    ledger = Ledger()
    run = start_run(fresh_redis.url, data_dir, "paused")
    log_steps(ledger, [run], range(0, 500))
    assert run.flush(timeout=WAIT)
    done = threading.Event()

    def train() -> None:
        log_steps(ledger, [run], range(500, 3000))
        done.set()

    fresh_redis.pause()  # SIGSTOP: connections hang instead of failing
    try:
        trainer = threading.Thread(target=train, name="test-trainer", daemon=True)
        trainer.start()
        # The watchdog: every log() call completes while Redis cannot answer.
        wait_until(done.is_set, "log() calls returned while Redis is paused")
        wait_until(lambda: run.stats.batches_spooled > 0, "batches spooled while Redis is paused")
        trainer.join()
    finally:
        fresh_redis.resume()
    with CollectorThread(fresh_redis.url, data_dir, ingest_spool=False) as running:
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)
    assert run.stats.redis_errors > 0 and report.dropped_points == 0


DOOMED_COLLECTOR = """
import sys
from aquarium.collector import Collector, CollectorSettings
Collector(CollectorSettings(redis_url=sys.argv[1], data_dir=sys.argv[2], consumer="doomed", read_count=5)).run()
"""


def delivered(r: redis.Redis, ids: list[bytes]) -> int:
    """How many of the stream's entries (``ids``, in order) the collectors' group has read.

    From the group's last-delivered-id: its ``entries-read`` counter turns nil once trimming
    leaves the stream with a hole.
    """
    groups = r.xinfo_groups(KEYS.stream)
    return ids.index(groups[0]["last-delivered-id"]) + 1 if groups and groups[0]["last-delivered-id"] in ids else 0


def kill_while_ingesting(r: redis.Redis, ids: list[bytes], redis_url: str, data_dir: Path, log_path: Path) -> int:
    """SIGKILL a collector subprocess part-way through the backlog, holding unacked entries.

    It is frozen (SIGSTOP) first so it cannot acknowledge between our look and the kill. A kill
    that still lands between an XACK and the next read leaves nothing pending: try again.
    """
    for _ in range(5):
        start = delivered(r, ids)
        with open(log_path, "wb") as out:
            child = subprocess.Popen(
                [sys.executable, "-P", "-c", DOOMED_COLLECTOR, redis_url, str(data_dir)],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:

            def ingesting() -> bool:
                assert child.poll() is None, log_path.read_text()
                return delivered(r, ids) >= start + 300 and pending(r) > 0

            wait_until(ingesting, "the collector is part-way through the backlog with entries pending")
            child.send_signal(signal.SIGSTOP)
        finally:
            child.kill()
            child.wait()
        left = pending(r)
        if left:
            return left
    pytest.fail("every kill landed between an XACK and the next read")


def test_collector_killed_mid_ingest_is_taken_over_by_a_sibling(redis_url: str, data_dir: Path, tmp_path: Path) -> None:
    ledger = Ledger()
    r = redis.Redis.from_url(redis_url)
    try:
        pipe = r.pipeline(transaction=False)
        for rank in range(4):
            for seq in range(1500):
                steps = list(range(seq * 200, seq * 200 + 200))
                pipe.xadd(KEYS.stream, {"b": pack_batch(make_batch("backlog", seq, steps, rank=rank))})
                for step in steps:
                    ledger.record("backlog", "x", rank, step, value_of(step, rank))
        ids = pipe.execute()

        left_pending = kill_while_ingesting(r, ids, redis_url, data_dir, tmp_path / "doomed.log")
        assert delivered(r, ids) < len(ids)  # killed with part of the backlog still unread

        rescuer = Collector(collector_settings(redis_url, data_dir, consumer="rescuer", claim_idle=0.2))
        try:

            def drained() -> bool:
                rescuer.run(burst=True)  # claims what has been idle for 0.2 s, reads the rest
                return pending(r) == 0 and delivered(r, ids) == len(ids)

            wait_until(drained, lambda: f"{pending(r)} entries still pending")
        finally:
            rescuer.close()
        assert rescuer.stats.claimed >= left_pending and rescuer.stats.dead_letters == 0
        assert r.xlen(KEYS.stream) == 0  # all acked: trimmed
        with Store(data_dir) as store:
            ledger.check(store)
    finally:
        r.close()


def test_closed_spool_segments_ingested_while_the_agent_lives(
    fresh_redis: RedisServer, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A collector may ingest (and delete) a spool segment the agent closed but has not replayed."""
    monkeypatch.setattr(shipper, "SEGMENT_BYTES", 20_000)
    fresh_redis.kill()
    ledger = Ledger()
    run = start_run(fresh_redis.url, data_dir, "segments")
    for chunk in range(6):
        log_steps(ledger, [run], range(chunk * 1000, chunk * 1000 + 1000))
        assert run.flush(timeout=WAIT)
    spool = data_dir / "spool" / "segments"
    segments = len(list(spool.glob("*.spool")))
    assert segments >= 3
    with Store(data_dir) as store:
        report = store.ingest_spool(include_live=False)  # a collector's pass: closed segments go
        assert len(report.deleted) == segments - 1 and not report.rejected
    assert len(list(spool.glob("*.spool"))) == 1  # the one still open
    fresh_redis.start()
    log_steps(ledger, [run], range(6000, 7000))
    with CollectorThread(fresh_redis.url, data_dir, ingest_spool=False) as running:
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)
    assert "shipper-bug" not in run.stats.last_error
    assert not os.path.exists(spool) or not list(spool.glob("*.spool"))
