"""One bad batch never stops ingest: whatever handling one batch raises dead-letters that batch,
the rest of its read is stored, and an entry that kills every collector handling it is
dead-lettered once it has been delivered ``max_deliveries`` times (poison-pill protection)."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import redis
from ledger import KEYS, CollectorThread, Ledger, collector_settings, make_batch, pending, value_of, wait_until

from aquarium.agent.wire import Batch, pack_batch, unpack_batch
from aquarium.collector import Collector, Store
from aquarium.collector import consumer as consumer_module
from aquarium.collector.store.failures import StoreUnavailableError

PILL_RUN = "pill"


def add(r: redis.Redis, ledger: Ledger | None, run_id: str, seq: int) -> bytes:
    steps = list(range(seq * 10, seq * 10 + 10))
    if ledger is not None:
        for step in steps:
            ledger.record(run_id, "x", 0, step, value_of(step, 0))
    return r.xadd(KEYS.stream, {"b": pack_batch(make_batch(run_id, seq, steps))})


def add_read_with_a_pill(r: redis.Redis, ledger: Ledger) -> bytes:
    """Three good batches and, between them, one the store chokes on: all in one read."""
    add(r, ledger, "good", 0)
    pill = add(r, None, PILL_RUN, 0)
    add(r, ledger, "good", 1)
    add(r, ledger, "good", 2)
    return pill


def choke_on_the_pill(monkeypatch: pytest.MonkeyPatch, error: BaseException) -> list[int]:
    """Make Store.ingest raise ``error`` for any transaction holding the pill; returns the attempt log."""
    real_ingest = Store.ingest
    attempts: list[int] = []

    def ingest(self: Store, batches: Iterable[Batch]) -> Any:
        items = list(batches)
        if any(b.id.run == PILL_RUN for b in items):
            attempts.append(len(items))
            raise error
        return real_ingest(self, items)

    monkeypatch.setattr(Store, "ingest", ingest)
    return attempts


def dead_letters(r: redis.Redis) -> list[dict[bytes, bytes]]:
    return [fields for _, fields in r.xrange(KEYS.dead_letter)]


@pytest.mark.parametrize("error", [RecursionError("maximum recursion depth exceeded"), KeyError("x"), TypeError()])
def test_a_batch_the_store_raises_anything_on_is_dead_lettered_and_its_read_is_stored(
    client: redis.Redis, redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    ledger = Ledger()
    pill = add_read_with_a_pill(client, ledger)
    attempts = choke_on_the_pill(monkeypatch, error)
    with CollectorThread(redis_url, data_dir) as running:
        wait_until(lambda: running.collector.stats.entries == 4, "the read handled")
        add(client, ledger, "good", 3)  # and it keeps going
        wait_until(lambda: running.collector.stats.entries == 5, "a good batch after the pill")
        ledger.check(running.collector.store)
    assert attempts == [4, 1]  # the read in one transaction, then the pill alone
    [dead] = dead_letters(client)
    assert dead[b"source_id"] == pill and type(error).__name__.encode() in dead[b"reason"]
    assert pending(client) == 0


def test_a_decoder_raising_something_unexpected_dead_letters_only_that_entry(
    client: redis.Redis, redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger()
    add(client, ledger, "good", 0)
    pill = client.xadd(KEYS.stream, {"b": b"makes the decoder crash"})
    add(client, ledger, "good", 1)
    real_unpack = consumer_module.unpack_batch

    def unpack(data: bytes) -> Batch:
        if data == b"makes the decoder crash":
            raise RuntimeError("a bug in the decoder")
        return real_unpack(data)

    monkeypatch.setattr(consumer_module, "unpack_batch", unpack)
    collector = Collector(collector_settings(redis_url, data_dir))
    try:
        collector.run(burst=True)
        ledger.check(collector.store)
    finally:
        collector.close()
    [dead] = dead_letters(client)
    assert dead[b"source_id"] == pill and dead[b"reason"] == b"RuntimeError: a bug in the decoder"


def test_a_store_that_cannot_write_dead_letters_nothing_and_the_entries_are_stored_later(
    client: redis.Redis, redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ledger = Ledger()
    for seq in range(3):
        add(client, ledger, "full-disk", seq)
    real_ingest = Store.ingest
    failures = [sqlite3.OperationalError("database or disk is full")] * 3

    def ingest(self: Store, batches: Iterable[Batch]) -> Any:
        items = list(batches)
        if items and failures:
            raise failures.pop()
        return real_ingest(self, items)

    monkeypatch.setattr(Store, "ingest", ingest)
    collector = Collector(collector_settings(redis_url, data_dir))
    try:
        with pytest.raises(StoreUnavailableError, match="database or disk is full"):
            collector.run(burst=True)  # a burst run reports it; a long-running one waits and retries
        assert dead_letters(client) == [] and pending(client) == 3
        with CollectorThread(redis_url, data_dir) as running:  # retries with backoff until it writes
            wait_until(lambda: running.collector.stats.stored == 3, "stored once the store writes again")
            assert running.collector.stats.dead_letters == 0
            ledger.check(running.collector.store)
    finally:
        collector.close()
    assert not failures and dead_letters(client) == [] and pending(client) == 0


@pytest.mark.parametrize("names", ["the same consumer name", "a new consumer name each time"])
def test_an_entry_that_kills_the_collector_is_dead_lettered_after_max_deliveries(
    client: redis.Redis, redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch, names: str
) -> None:
    ledger = Ledger()
    pill = add_read_with_a_pill(client, ledger)
    attempts = choke_on_the_pill(monkeypatch, SystemExit("killed while handling the pill"))
    deaths = 0
    for life in range(10):
        name = "collector" if names.startswith("the same") else f"collector-{life}"
        collector = Collector(collector_settings(redis_url, data_dir, consumer=name, claim_idle=0.0, max_deliveries=3))
        try:
            collector.run(burst=True)
            break
        except SystemExit:
            deaths += 1
        finally:
            collector.close()
    assert deaths == 3 and len(attempts) == 3  # the store saw the pill max_deliveries times, no more
    assert attempts == [4, 4, 1]  # the read, the read retried as a whole once, then the pill alone
    [dead] = dead_letters(client)
    assert dead[b"source_id"] == pill and b"delivered 3 times" in dead[b"reason"]
    assert unpack_batch(dead[b"b"]).id.run == PILL_RUN  # the dead letter keeps the batch
    assert pending(client) == 0
    with Store(data_dir) as store:
        ledger.check(store)  # the good batches read with the pill are all stored, once


KILLED_COLLECTOR = """
import os, sys
from aquarium.collector import Collector, CollectorSettings, Store

real_ingest = Store.ingest
def ingest(self, batches):
    items = list(batches)
    if any(b.id.run == "pill" for b in items):
        os._exit(137)  # what a segfault or the OOM killer looks like: no cleanup, no XACK
    return real_ingest(self, items)
Store.ingest = ingest
settings = CollectorSettings.from_env(
    redis_url=sys.argv[1], data_dir=sys.argv[2], consumer=sys.argv[3], claim_idle=0.0, max_deliveries=3,
    ingest_spool=False,
)
collector = Collector(settings)
collector.run(burst=True)
collector.close()
"""


@pytest.mark.parametrize("consumer", ["doomed", ""], ids=["same name", "default name: host-pid"])
def test_a_collector_process_killed_by_an_entry_gets_past_it(
    client: redis.Redis, redis_url: str, data_dir: Path, consumer: str
) -> None:
    ledger = Ledger()
    pill = add_read_with_a_pill(client, ledger)
    codes = []
    for _ in range(10):
        done = subprocess.run(
            [sys.executable, "-P", "-c", KILLED_COLLECTOR, redis_url, str(data_dir), consumer],
            capture_output=True,
            timeout=60,
        )
        codes.append(done.returncode)
        if done.returncode == 0:
            break
        assert done.returncode == 137, done.stderr.decode()
    assert codes == [137, 137, 137, 0]
    [dead] = dead_letters(client)
    assert dead[b"source_id"] == pill and b"poison pill" in dead[b"reason"]
    assert pending(client) == 0
    with Store(data_dir) as store:
        ledger.check(store)


def test_an_entry_is_acked_only_once_its_dead_letter_is_written(
    client: redis.Redis, redis_url: str, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Redis refusing the dead-letter XADD (OOM under noeviction, an ACL) must not ack the entry:
    a pipeline runs every command, so an XACK sent with it would leave the entry nowhere."""
    ledger = Ledger()
    add(client, ledger, "good", 0)
    bad = client.xadd(KEYS.stream, {"b": b"not a batch"})
    pending_at_each_try: list[int] = []
    real_dead_letter = Collector._dead_letter

    def refuse_the_first(self: Collector, dead: list[tuple[bytes, bytes, str]]) -> None:
        pending_at_each_try.append(pending(client))
        if len(pending_at_each_try) == 1:
            raise redis.exceptions.OutOfMemoryError("OOM command not allowed when used memory > 'maxmemory'")
        real_dead_letter(self, dead)

    monkeypatch.setattr(Collector, "_dead_letter", refuse_the_first)
    collector = Collector(collector_settings(redis_url, data_dir))
    try:
        collector.run(burst=True)  # the refusal is retried like any Redis failure
        ledger.check(collector.store)
    finally:
        collector.close()
    assert pending_at_each_try == [2, 2]  # after the refusal, both entries were still pending
    assert pending(client) == 0 and collector.stats.redis_errors == 1
    [dead] = dead_letters(client)
    assert dead[b"source_id"] == bad


def test_while_the_store_is_down_maintenance_claims_nothing_more(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    """Entries waiting for the store are kept; claiming a sibling's would replace them and raise
    the sibling's delivery counts toward the poison limit while nothing can be stored."""
    add(client, None, "good", 0)
    client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    client.xreadgroup(KEYS.group, "sibling", {KEYS.stream: ">"}, count=1)  # a dead sibling's entry
    collector = Collector(collector_settings(redis_url, data_dir, claim_idle=0.0))
    try:
        waiting = [(b"1-1", {b"b": b"read, not stored"})]
        collector._unfinished = list(waiting)  # what a StoreUnavailableError leaves
        collector._maintenance()
        assert collector._unfinished == waiting
        [entry] = client.xpending_range(KEYS.stream, KEYS.group, "-", "+", 10)
        assert entry["consumer"] == b"sibling" and entry["times_delivered"] == 1
    finally:
        collector._unfinished = []
        collector.close()


def test_a_damaged_database_is_the_stores_fault_not_the_batchs() -> None:
    from aquarium.collector.store.failures import store_is_down

    assert store_is_down(sqlite3.DatabaseError("database disk image is malformed"))  # retried, never dead-lettered
    assert store_is_down(sqlite3.OperationalError("database or disk is full"))
    assert not store_is_down(sqlite3.IntegrityError("UNIQUE constraint failed"))
    assert not store_is_down(OverflowError("Python int too large to convert to SQLite INTEGER"))
