"""Incarnations are ordered by when the store first saw them, never by a wall clock."""

from __future__ import annotations

from pathlib import Path

from batches import make_batch

from aquarium.collector import Store

OLD = "19c0a8f0000000-aaaaaa"  # the first process's incarnation (its start time, in hex)
NEW = "19c0a000000000-bbbbbb"  # the restarted process's: the clock had stepped back, so it sorts first


def test_after_the_clock_steps_back_a_restarted_process_wins_its_relogged_steps(store: Store) -> None:
    store.ingest([make_batch(0, [0, 1, 2, 3, 4], [1.0] * 5, inc=OLD)])
    store.ingest([make_batch(0, [3, 4, 5], [2.0] * 3, inc=NEW)])  # resumed from the step-3 checkpoint
    series = store.read_series("r1", "loss")
    assert series.steps.tolist() == [0, 1, 2, 3, 4, 5]
    assert series.values.tolist() == [1.0, 1.0, 1.0, 2.0, 2.0, 2.0]
    summary = store.get_run("r1")["metrics"]["loss"]
    assert (summary["last"], summary["last_step"]) == (2.0, 5)
    assert [i["incarnation"] for i in store.get_run("r1")["incarnations"]] == [OLD, NEW]


def test_the_order_is_kept_across_reopening_and_late_batches(tmp_path: Path) -> None:
    with Store(tmp_path) as store:
        store.ingest([make_batch(0, [0, 1], [1.0, 1.0], inc=OLD)])
        store.ingest([make_batch(0, [1], [2.0], inc=NEW)])
    with Store(tmp_path) as store:
        store.ingest([make_batch(1, [1, 2], [3.0, 3.0], inc=OLD)])  # the old process's late batch
        assert store.read_series("r1", "loss").values.tolist() == [1.0, 2.0, 3.0]
        store.compact(everything=True)
        assert store.read_series("r1", "loss").values.tolist() == [1.0, 2.0, 3.0]
