"""The store: exactly-once ingest, summaries, last-value-wins, aggregation, compaction, codec."""

from __future__ import annotations

import importlib
import math
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from batches import make_batch

import aquarium.agent as aq
from aquarium.agent.errors import RunNotFoundError
from aquarium.agent.spool import spool_files
from aquarium.collector import Store
from aquarium.collector.store import codec


def test_duplicates_are_skipped_by_batch_id(store: Store) -> None:
    b0, b1 = make_batch(0, [0, 1], [1.0, 2.0]), make_batch(1, [2, 3], [3.0, 4.0])
    first = store.ingest([b0, b1, b0])
    assert (first.stored, first.duplicates) == (2, 1)
    again = store.ingest([b1, b0])
    assert (again.stored, again.duplicates) == (0, 2)
    series = store.read_series("r1", "loss")
    assert series.steps.tolist() == [0, 1, 2, 3] and series.values.tolist() == [1.0, 2.0, 3.0, 4.0]
    assert store.get_run("r1")["metrics"]["loss"]["count"] == 4


def test_watermark_is_the_highest_contiguous_seq_and_gaps_are_visible(store: Store) -> None:
    result = store.ingest([make_batch(0, [0], [0.0]), make_batch(1, [1], [1.0]), make_batch(3, [3], [3.0])])
    assert result.watermarks[("r1", 0, "inc-a")] == 1 and result.gaps[("r1", 0, "inc-a")] == 1
    inc = store.get_run("r1")["incarnations"][0]
    assert (inc["committed_seq"], inc["max_seq"], inc["missing"]) == (1, 3, 1)
    result = store.ingest([make_batch(2, [2], [2.0])])
    assert result.watermarks[("r1", 0, "inc-a")] == 3 and not result.gaps
    assert store.read_series("r1", "loss").values.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_relogged_step_keeps_the_last_value_even_across_incarnations(store: Store) -> None:
    store.ingest([make_batch(0, [0, 1, 2, 3], [10.0, 11.0, 12.0, 13.0])])
    store.ingest([make_batch(1, [2, 1], [22.0, 21.0])])  # steps going backwards, re-logged
    store.ingest([make_batch(0, [3, 4], [33.0, 34.0], inc="inc-b")])  # a restart of rank 0
    series = store.read_series("r1", "loss")
    assert series.steps.tolist() == [0, 1, 2, 3, 4]
    assert series.values.tolist() == [10.0, 21.0, 22.0, 33.0, 34.0]


def test_late_batch_is_ordered_by_seq_not_arrival(store: Store) -> None:
    store.ingest([make_batch(0, [0], [1.0]), make_batch(2, [5], [3.0])])
    store.ingest([make_batch(1, [5], [2.0])])  # seq 1 arrives last but was logged before seq 2
    assert store.read_series("r1", "loss").values.tolist() == [1.0, 3.0]


def test_summary_counts_last_min_max_and_ignores_nan(store: Store) -> None:
    store.ingest([make_batch(0, [0, 1, 2, 3], [5.0, math.nan, -2.0, 7.0]), make_batch(1, [4], [math.inf])])
    summary = store.get_run("r1")["metrics"]["loss"]
    assert summary["count"] == 5 and summary["last_step"] == 4 and summary["last"] == math.inf
    assert (summary["min"], summary["min_step"]) == (-2.0, 2)
    assert (summary["max"], summary["max_step"]) == (math.inf, 4)


def test_events_set_run_fields(store: Store) -> None:
    store.ingest(
        [
            make_batch(
                0,
                [],
                [],
                meta={"name": "lr-1e-3", "experiment": "resnet", "world_size": 2, "host": "node1", "started_at": 100.0},
                params={"lr": 0.001, "layers": [1, 2]},
                tags={"best": ""},
                status=[("running", 100.0)],
            ),
            make_batch(0, [], [], rank=1, status=[("running", 101.0)]),
            make_batch(1, [], [], status=[("completed", 200.0)]),
        ]
    )
    run = store.get_run("r1")
    assert (run["name"], run["experiment"], run["world_size"], run["host"]) == ("lr-1e-3", "resnet", 2, "node1")
    assert run["params"] == {"lr": 0.001, "layers": [1, 2]} and run["tags"] == {"best": ""}
    assert run["status"] == "completed" and run["ended_at"] == 200.0 and run["ranks"] == [0, 1]
    assert [h["status"] for h in run["status_history"]] == ["running", "running", "completed"]
    assert [r["id"] for r in store.list_runs(experiment="resnet")] == ["r1"]
    assert store.list_runs(experiment="other") == []


def test_aggregate_across_ranks(store: Store) -> None:
    store.ingest(
        [
            make_batch(0, [0, 1, 2], [1.0, 2.0, 3.0], rank=0),
            make_batch(0, [0, 1], [3.0, math.nan], rank=1),
            make_batch(0, [0, 2], [5.0, 9.0], rank=2),
        ]
    )
    agg = store.read_aggregate("r1", "loss")
    assert agg.steps.tolist() == [0, 1, 2]
    assert agg.mean.tolist() == [3.0, 2.0, 6.0]
    assert agg.min.tolist() == [1.0, 2.0, 3.0] and agg.max.tolist() == [5.0, 2.0, 9.0]
    assert agg.count.tolist() == [3, 1, 2]
    assert sorted(store.read_ranks("r1", "loss")) == [0, 1, 2]


def test_unknown_run_raises_a_clear_error(store: Store) -> None:
    with pytest.raises(RunNotFoundError, match="no run with id 'nope'"):
        store.get_run("nope")
    with pytest.raises(RunNotFoundError):
        store.read_series("nope", "loss")
    store.ingest([make_batch(0, [0], [1.0])])
    assert len(store.read_series("r1", "never-logged")) == 0


def test_compaction_merges_small_settled_chunks_without_changing_the_series(store: Store) -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(size=2000)
    batches = [
        make_batch(seq, list(range(seq * 10, seq * 10 + 10)), values[seq * 10 : seq * 10 + 10].tolist())
        for seq in range(200)
    ]
    for i in range(0, 200, 3):  # few batches per transaction, like a collector keeping up
        store.ingest(batches[i : i + 3][::-1])  # reversed within a read: still one value per step
    before = store.read_series("r1", "loss")
    assert store.chunk_count("r1", "loss") > 50
    removed = store.compact()
    assert removed > 0 and store.chunk_count("r1", "loss") == 1
    after = store.read_series("r1", "loss")
    assert np.array_equal(before.steps, after.steps) and np.array_equal(before.values, after.values)
    assert np.array_equal(before.times, after.times) and after.steps.tolist() == list(range(2000))


def test_unsettled_chunks_are_not_merged(store: Store) -> None:
    store.ingest([make_batch(seq, [seq], [float(seq)]) for seq in range(1, 40)])  # seq 0 missing
    assert store.compact(everything=True) == 0
    store.ingest([make_batch(0, [0], [0.0])])
    assert store.compact(everything=True) > 0
    assert store.read_series("r1", "loss").values.tolist() == [float(s) for s in range(40)]


def test_delete_run_removes_it_and_redelivery_does_not_revive_it(store: Store) -> None:
    batch = make_batch(0, [0], [1.0], params={"a": 1})
    store.ingest([batch])
    assert store.delete_run("r1") is True and store.delete_run("r1") is False
    store.ingest([batch])
    with pytest.raises(RunNotFoundError):
        store.get_run("r1")


def test_downsampling_keeps_extremes(store: Store) -> None:
    n = 50_000
    values = np.sin(np.arange(n) / 500.0)
    values[12345] = 40.0
    store.ingest([make_batch(0, list(range(n)), values.tolist())])
    series = store.read_series("r1", "loss", max_points=500)
    assert len(series) <= 500 and series.values.max() == 40.0 and series.steps[0] == 0


def test_codec_round_trips_bit_exact() -> None:
    rng = np.random.default_rng(3)
    n = 10_000
    steps = np.cumsum(rng.integers(-3, 10, n))
    values = rng.normal(size=n)
    values[[1, 2, 3]] = [np.nan, np.inf, -np.inf]
    times = 1.7e9 + np.cumsum(rng.uniform(0, 0.01, n))
    times[5] = 0.0  # a clock jump still round-trips
    enc = codec.encode(steps, values, times)
    assert enc.encoding == codec.PACKED
    assert (len(enc.steps) + len(enc.values) + len(enc.times)) / n < 16
    for name, original in (("steps", steps), ("values", values), ("times", times)):
        decoded = codec.decode_column(enc.encoding, getattr(enc, name), name)
        assert decoded.tobytes() == np.asarray(original, dtype=decoded.dtype).tobytes()


def test_a_failed_transaction_leaves_nothing_behind(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    ingest_module = importlib.import_module("aquarium.collector.store.ingest")

    def explode(*args: object) -> None:
        raise sqlite3.IntegrityError("boom")

    monkeypatch.setattr(ingest_module, "_apply_events", explode)
    with pytest.raises(sqlite3.IntegrityError):
        store.ingest([make_batch(0, [0], [1.0], params={"a": 1})])
    monkeypatch.undo()
    assert store.list_runs() == []
    result = store.ingest([make_batch(0, [0], [1.0], params={"a": 1})])  # the ledger was rolled back too
    assert result.stored == 1 and store.get_run("r1")["params"] == {"a": 1}


def test_the_writer_runs_each_write_in_its_own_transaction(store: Store) -> None:
    writer = store._writer

    def insert_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO experiments (name, created_at) VALUES ('lost', 0)")
        assert conn.in_transaction  # the writer began it
        raise KeyError("the task's own error")

    with pytest.raises(KeyError, match="the task's own error"):
        writer.execute(insert_then_fail)
    assert writer.execute(lambda conn: conn.execute("SELECT count(*) FROM experiments").fetchone()[0]) == 0
    assert writer.execute(lambda conn: conn.in_transaction, transaction=False) is False


def test_a_failing_rollback_never_hides_the_first_error(store: Store) -> None:
    def end_the_transaction_then_fail(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO experiments (name, created_at) VALUES ('kept', 0)")
        conn.execute("COMMIT")  # nothing left to roll back: a ROLLBACK now would itself fail
        raise ValueError("first error")

    with pytest.raises(ValueError, match="first error"):
        store._writer.execute(end_the_transaction_then_fail)
    assert store.ingest([make_batch(0, [0], [1.0])]).stored == 1  # the writer is still usable


def test_opening_a_store_ingests_nothing_until_asked(data_dir: Path) -> None:
    run = aq.init(run_id="offline", mode="offline", data_dir=data_dir)
    run.log({"loss": 1.0}, step=0)
    run.finish()
    assert spool_files(data_dir / "spool")
    with Store(data_dir) as store:
        assert store.list_runs() == [] and spool_files(data_dir / "spool")
        assert store.ingest_spool().stored == 1
        assert [r["id"] for r in store.list_runs()] == ["offline"] and not spool_files(data_dir / "spool")


def test_a_param_or_tag_set_twice_keeps_the_value_logged_last_whatever_arrives_last(store: Store) -> None:
    store.ingest([make_batch(1, [], [], params={"lr": 0.1}, tags={"stage": "fine-tune"})])
    store.ingest([make_batch(0, [], [], params={"lr": 1.0, "layers": 4}, tags={"stage": "pretrain"})])  # late
    run = store.get_run("r1")
    assert run["params"] == {"layers": 4, "lr": 0.1} and run["tags"] == {"stage": "fine-tune"}
    store.ingest([make_batch(0, [], [], inc="inc-restarted", params={"lr": 0.5})])  # a later incarnation
    assert store.get_run("r1")["params"]["lr"] == 0.5
