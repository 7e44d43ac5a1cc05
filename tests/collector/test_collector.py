"""The collector: dead letters, trimming below every group's acks, watermarks and seq gaps, a lost group.

Batches are XADDed by hand here, so each test controls exactly what the stream holds.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
import redis
from ledger import KEYS, CollectorThread, Ledger, burst, collector_settings, make_batch, pending, value_of, wait_until

from aquarium.agent.redis_keys import RedisKeys
from aquarium.agent.wire import MAX_BATCH_BYTES, pack_batch
from aquarium.collector import Collector, Store


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def add(r: redis.Redis, ledger: Ledger, run_id: str, seq: int, rank: int = 0, inc: str = "inc-a") -> bytes:
    """XADD one good batch of ten points and record them in the ledger; returns the entry id."""
    steps = list(range(seq * 10, seq * 10 + 10))
    for step in steps:
        ledger.record(run_id, "x", rank, step, value_of(step, rank))
    return r.xadd(KEYS.stream, {"b": pack_batch(make_batch(run_id, seq, steps, rank=rank, inc=inc))})


def test_poison_goes_to_dead_letters_and_the_collector_keeps_going(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    ledger = Ledger()
    nan_batch = make_batch("poison", 1, [10, 11, 12], values=[math.nan, math.inf, -math.inf])
    for step, value in zip((10, 11, 12), (math.nan, math.inf, -math.inf)):
        ledger.record("poison", "x", 0, step, value)
    unknown_version = msgpack.packb({"v": 99, "id": ["poison", 0, "inc-a", 50], "m": []})
    oversized = msgpack.packb(
        {"v": 1, "id": ["poison", 0, "inc-a", 51], "pad": b"\0" * MAX_BATCH_BYTES}, use_bin_type=True
    )
    unstorable = make_batch("poison", 4, [0])
    unstorable.meta = {"world_size": 2**64 - 1}  # valid on the wire, too large for SQLite
    with CollectorThread(redis_url, data_dir) as running:
        add(client, ledger, "poison", 0)
        client.xadd(KEYS.stream, {"b": b"\xc1 not msgpack"})
        client.xadd(KEYS.stream, {"b": pack_batch(nan_batch)})  # NaN and Inf are values, not poison
        client.xadd(KEYS.stream, {"b": oversized})
        client.xadd(KEYS.stream, {"b": unknown_version})
        client.xadd(KEYS.stream, {"other": b"no batch field"})
        client.xadd(KEYS.stream, {"b": pack_batch(unstorable)})
        add(client, ledger, "poison", 2)
        wait_until(
            lambda: (
                client.xlen(KEYS.dead_letter) >= 5 and pending(client) == 0 and running.collector.stats.entries == 8
            ),
            "every entry handled",
        )
        add(client, ledger, "poison", 3)  # still running after all that
        wait_until(lambda: running.collector.stats.entries == 9, "a good batch after the poison")
        assert running.alive
        ledger.check(running.collector.store)
        stored_nan = running.collector.store.read_series("poison", "x").values[10:13]
        assert np.array_equal(stored_nan, [math.nan, math.inf, -math.inf], equal_nan=True)
    dead = client.xrange(KEYS.dead_letter)
    reasons = [fields[b"reason"].decode() for _, fields in dead]
    assert len(dead) == 5, reasons
    for fragment in (
        "not msgpack",
        f"exceeds the {MAX_BATCH_BYTES}-byte limit",
        "unknown wire version 99",
        "no 'b' field",
        "store rejected the batch",
    ):
        assert sum(fragment in reason for reason in reasons) == 1, (fragment, reasons)
    assert all(fields[b"source_id"] for _, fields in dead)  # each points back at its stream entry
    assert next(f for _, f in dead if b"not msgpack" in f[b"reason"])[b"b"] == b"\xc1 not msgpack"
    assert pending(client) == 0


def test_trimming_never_removes_what_a_group_has_not_acked(client: redis.Redis, redis_url: str, data_dir: Path) -> None:
    ledger = Ledger()
    ids = [add(client, ledger, "trim", seq) for seq in range(20)]
    client.xgroup_create(KEYS.stream, "audit", id="0")  # a second consumer group that lags
    client.xreadgroup("audit", "slow", {KEYS.stream: ">"}, count=5)  # 5 pending there, 15 undelivered
    # and in the collectors' group, 3 entries a dead collector read and never acknowledged
    client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    client.xreadgroup(KEYS.group, "dead-collector", {KEYS.stream: ">"}, count=3)

    collector = burst(redis_url, data_dir, claim_idle=3600.0)  # too soon to claim them
    assert collector.stats.entries == 17 and pending(client) == 3
    assert [eid for eid, _ in client.xrange(KEYS.stream)] == ids  # nothing unacked was trimmed

    client.xack(KEYS.stream, "audit", *ids[:5])  # the audit group acks its first five ...
    client.xreadgroup("audit", "slow", {KEYS.stream: ">"}, count=3)  # ... and holds the next three
    burst(redis_url, data_dir, claim_idle=3600.0)
    assert [eid for eid, _ in client.xrange(KEYS.stream)] == ids  # the dead collector still holds 0..2

    rescuer = burst(redis_url, data_dir, claim_idle=0.0)  # now its entries are claimed and stored
    assert rescuer.stats.claimed == 3 and pending(client) == 0
    assert [eid for eid, _ in client.xrange(KEYS.stream)] == ids[5:]  # below audit's oldest unacked
    _, claimed, deleted = client.xautoclaim(KEYS.stream, "audit", "slow", 0)
    assert [eid for eid, _ in claimed] == ids[5:8] and deleted == []  # no pending entry was trimmed

    rest = [eid for eid, _ in client.xreadgroup("audit", "slow", {KEYS.stream: ">"})[0][1]]
    client.xack(KEYS.stream, "audit", *ids[5:8], *rest)
    burst(redis_url, data_dir)
    assert client.xlen(KEYS.stream) == 0  # everything acked by every group: trimmed
    with Store(data_dir) as store:
        ledger.check(store)


def test_trimming_survives_a_sibling_acking_between_xinfo_and_xpending(client: redis.Redis) -> None:
    """XINFO GROUPS says an entry is pending, a sibling acks it, XPENDING then has no minimum."""
    from aquarium.collector import upkeep

    ids = [client.xadd(KEYS.stream, {"b": b"x"}) for _ in range(4)]
    client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    client.xreadgroup(KEYS.group, "sibling", {KEYS.stream: ">"}, count=3)
    stale = client.xinfo_groups(KEYS.stream)  # pending: 3, as this collector sees it
    client.xack(KEYS.stream, KEYS.group, *ids[:3])  # ... and then the sibling acks them

    class StaleInfo(redis.Redis):
        def xinfo_groups(self, name):  # type: ignore[no-untyped-def,override]
            return stale

    raced = StaleInfo(connection_pool=client.connection_pool)
    assert stale[0]["pending"] == 3 and client.xpending(KEYS.stream, KEYS.group)["min"] is None
    assert upkeep.trim(raced, KEYS) == 3  # trimmed below the last delivered entry, no crash
    assert [eid for eid, _ in client.xrange(KEYS.stream)] == ids[3:]


def test_out_of_order_seqs_hold_the_watermark_and_show_the_gap(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    ledger = Ledger()
    wm_key, wm_field = KEYS.watermarks("gaps"), RedisKeys.watermark_field(0, "inc-a")
    for seq in (0, 1, 3):
        add(client, ledger, "gaps", seq)
    collector = Collector(collector_settings(redis_url, data_dir))
    try:
        collector.run(burst=True)
        assert int(client.hget(wm_key, wm_field)) == 1  # 3 is stored, but 2 is missing below it
        incarnation = collector.store.get_run("gaps")["incarnations"][0]
        assert (incarnation["committed_seq"], incarnation["max_seq"], incarnation["missing"]) == (1, 3, 1)
        assert collector.stats.gaps == {("gaps", 0, "inc-a"): 1}

        add(client, ledger, "gaps", 2)  # the late batch
        collector.run(burst=True)
        assert int(client.hget(wm_key, wm_field)) == 3
        incarnation = collector.store.get_run("gaps")["incarnations"][0]
        assert (incarnation["committed_seq"], incarnation["max_seq"], incarnation["missing"]) == (3, 3, 0)
        ledger.check(collector.store)
        assert collector.store.read_series("gaps", "x").steps.tolist() == list(range(40))
    finally:
        collector.close()


def test_a_group_lost_with_a_restarted_redis_is_recreated(client: redis.Redis, redis_url: str, data_dir: Path) -> None:
    ledger = Ledger()
    add(client, ledger, "lost-group", 0)
    collector = Collector(collector_settings(redis_url, data_dir))
    try:
        collector.run(burst=True)
        client.flushall()  # what a Redis restarted without persistence looks like: no stream, no group
        add(client, ledger, "lost-group", 1)
        client.xadd(KEYS.stream, {"b": pack_batch(make_batch("lost-group", 0, list(range(10))))})  # a resend
        collector.run(burst=True)  # one burst must read what agents sent to the new server
        assert collector.stats.stored == 2 and collector.stats.duplicates == 1
        assert (
            pending(client) == 0
            and int(client.hget(KEYS.watermarks("lost-group"), RedisKeys.watermark_field(0, "inc-a"))) == 1
        )
        ledger.check(collector.store)
    finally:
        collector.close()


def test_a_running_collector_survives_losing_its_group_again_and_again(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    ledger = Ledger()
    with CollectorThread(redis_url, data_dir, maintenance_interval=0.0, claim_idle=0.0) as running:
        for seq in range(15):
            client.flushall()  # may land between any two of the collector's commands
            add(client, ledger, "flushed", seq)
            wait_until(
                lambda: running.collector.stats.stored == seq + 1 or not running.alive, lambda: f"batch {seq} stored"
            )
            assert running.alive
        ledger.check(running.collector.store)


def consumer_names(r: redis.Redis) -> set[str]:
    return {c["name"].decode() for c in r.xinfo_consumers(KEYS.stream, KEYS.group)}


def test_dead_consumers_with_nothing_pending_leave_the_group(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    ledger = Ledger()
    client.xadd(KEYS.stream, {"note": b"handled by gone-clean"})
    for seq in range(2):
        add(client, ledger, "idle", seq)
    client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    [(_, [(acked, _)])] = client.xreadgroup(KEYS.group, "gone-clean", {KEYS.stream: ">"}, count=1)
    client.xack(KEYS.stream, KEYS.group, acked)  # died with nothing pending
    client.xreadgroup(KEYS.group, "gone-holding", {KEYS.stream: ">"}, count=1)  # died holding one entry

    burst(redis_url, data_dir, consumer="me", claim_idle=3600.0)  # none of them idle for an hour yet
    assert consumer_names(client) == {"gone-clean", "gone-holding", "me"}

    collector = burst(redis_url, data_dir, consumer="me", claim_idle=3600.0, consumer_idle=0.0)
    assert consumer_names(client) == {"gone-holding", "me"}  # its entry must stay claimable
    assert collector.stats.consumers_removed == 1 and pending(client) == 1

    burst(redis_url, data_dir, consumer="rescuer", claim_idle=0.0, consumer_idle=0.0)
    assert consumer_names(client) == {"rescuer"} and pending(client) == 0
    with Store(data_dir) as store:
        ledger.check(store)


def test_a_consumer_that_read_since_the_look_keeps_its_entries(client: redis.Redis) -> None:
    from aquarium.collector.upkeep import remove_consumer_if_nothing_pending

    client.xadd(KEYS.stream, {"b": b"x"})
    client.xgroup_create(KEYS.stream, KEYS.group, id="0")
    client.xreadgroup(KEYS.group, "busy", {KEYS.stream: ">"})
    assert not remove_consumer_if_nothing_pending(client, KEYS, "busy")
    assert consumer_names(client) == {"busy"} and pending(client) == 1
