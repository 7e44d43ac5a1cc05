"""The batch-id ledger: digests tell a duplicate from a conflict; the watermark never covers a conflict."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import redis
import sqlite_utils
from batches import make_batch

from aquarium.agent.redis_keys import BATCH_FIELD, DEAD_REASON_FIELD, RedisKeys
from aquarium.agent.wire import pack_batch
from aquarium.collector import Collector, CollectorSettings, Store
from aquarium.collector.store.schema import DB_NAME, connect, migrations

INC = ("r1", 0, "inc-a")


def real_batches(seqs: range) -> list:
    return [make_batch(seq, [seq], [float(seq)]) for seq in seqs]


def forged(seq: int) -> object:
    return make_batch(seq, [seq], [666.0])


def test_a_repeated_id_with_the_same_content_is_a_duplicate(store: Store) -> None:
    store.ingest(real_batches(range(2)))
    again = store.ingest(real_batches(range(2)))
    assert (again.stored, again.duplicates, again.conflicts) == (0, 2, [])
    assert store.get_run("r1")["incarnations"][0]["conflicts"] == 0


def test_a_repeated_id_with_other_content_is_a_conflict_never_stored(store: Store) -> None:
    store.ingest(real_batches(range(3)))
    fake = forged(1)
    result = store.ingest([fake])
    assert result.conflicts == [fake] and (result.stored, result.duplicates) == (0, 0)
    assert store.read_series("r1", "loss").values.tolist() == [0.0, 1.0, 2.0]
    inc = store.get_run("r1")["incarnations"][0]
    assert inc["conflicts"] == 1 and inc["committed_seq"] == 0  # the watermark stops below the conflict


def test_within_one_transaction_the_second_of_two_contents_is_the_conflict(store: Store) -> None:
    real, fake = real_batches(range(1))[0], forged(0)
    result = store.ingest([real, fake, real])
    assert result.conflicts == [fake] and (result.stored, result.duplicates) == (1, 1)
    assert store.read_series("r1", "loss").values.tolist() == [0.0]


def test_a_forged_future_seq_that_arrives_first_never_lets_the_watermark_cover_it(store: Store) -> None:
    """The forged batch is stored (it came first); the real one with its id is the conflict:
    counted, visible, and the agent is never told that seq was committed, so it keeps it."""
    store.ingest([forged(3)])
    result = store.ingest(real_batches(range(6)))  # the real agent catches up
    assert [b.id.seq for b in result.conflicts] == [3] and result.stored == 5
    assert result.watermarks[INC] == 2
    assert store.ingest(real_batches(range(6, 8))).watermarks[INC] == 2  # and stays there
    inc = store.get_run("r1")["incarnations"][0]
    assert (inc["conflicts"], inc["committed_seq"], inc["max_seq"]) == (1, 2, 7)


def test_a_conflict_found_after_the_watermark_passed_its_seq_pulls_the_watermark_back(store: Store) -> None:
    store.ingest([forged(3)])
    assert store.ingest(real_batches(range(3))).watermarks[INC] == 3  # the forged batch filled seq 3
    result = store.ingest(real_batches(range(3, 5)))  # the real seq 3 arrives in a later read
    assert [b.id.seq for b in result.conflicts] == [3] and result.watermarks[INC] == 2
    assert store.watermark(*INC) == 2


def test_the_collector_dead_letters_a_conflict(redis_url: str, data_dir: Path) -> None:
    keys = RedisKeys("aquarium")
    client = redis.Redis.from_url(redis_url)
    for batch in [*real_batches(range(2)), forged(1)]:
        client.xadd(keys.stream, {BATCH_FIELD: pack_batch(batch)})
    settings = CollectorSettings(redis_url=redis_url, data_dir=data_dir, prefix="aquarium", consumer="c1")
    collector = Collector(settings)
    try:
        stats = collector.run(burst=True)
    finally:
        collector.close()
    dead = client.xrange(keys.dead_letter)
    assert stats.stored == 2 and stats.dead_letters == 1 and len(dead) == 1
    assert dead[0][1][DEAD_REASON_FIELD.encode()].startswith(b"conflict: batch id (r1, 0, inc-a, 1)")
    assert client.xpending(keys.stream, keys.group)["pending"] == 0
    client.close()
    with Store(data_dir) as store:
        assert store.get_run("r1")["incarnations"][0]["conflicts"] == 1


def test_a_store_from_before_digests_is_migrated(tmp_path: Path) -> None:
    """Ledger rows without a digest are trusted as before; incarnations keep their first-seen
    order; summaries are rebuilt."""
    conn = connect(tmp_path / DB_NAME, writer=True)
    migrations.apply(sqlite_utils.Database(conn), stop_before="m002_digests_seen_order_exact_summaries")
    steps, values = sqlite3.Binary(b"\x05" + bytes(7)), sqlite3.Binary(bytes(8))  # step 5, value 0.0
    conn.executescript(f"""
        INSERT INTO runs (id, name, created_at, updated_at) VALUES ('r1', 'r1', 0, 0);
        INSERT INTO incarnations (run_id, rank, incarnation, first_seen, committed_seq, max_seq, batches)
            VALUES ('r1', 0, 'inc-z', 0, 0, 0, 1), ('r1', 0, 'inc-a', 1, -1, -1, 0);
        INSERT INTO batches (incarnation_id, seq, received_at, points) VALUES (1, 0, 0, 1);
        INSERT INTO series (run_id, key, rank, count, last_step, last_value) VALUES ('r1', 'loss', 0, 1, 99, 9.0);
        INSERT INTO chunks (series_id, incarnation_id, seq_first, seq_last, n, first_step, last_step, encoding,
                            steps, vals, times) VALUES (1, 1, 0, 0, 1, 5, 5, 0, X'{steps.hex()}', X'{values.hex()}',
                            X'{values.hex()}');
    """)
    conn.close()
    with Store(tmp_path) as store:
        assert store.ingest([make_batch(0, [1], [1.0], inc="inc-z")]).duplicates == 1
        run = store.get_run("r1")
        assert [i["incarnation"] for i in run["incarnations"]] == ["inc-z", "inc-a"]
        assert (run["metrics"]["loss"]["last_step"], run["metrics"]["loss"]["last"]) == (5, 0.0)
        assert store.ingest([make_batch(0, [5], [7.0], inc="inc-a")]).stored == 1  # seen after inc-z: wins
        assert store.read_series("r1", "loss").values.tolist() == [7.0]
