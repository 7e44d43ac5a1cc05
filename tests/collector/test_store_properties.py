"""Any permutation or duplication of a set of batches yields the same store: series, summaries,
params and tags.

Incarnations are ordered by when the store first saw them, so the arrival order decides that
order: the expected store is the one built from the same batches in one transaction, sorted by
(first sight of their incarnation in the arrival, seq). Every other difference in arrival
(which batch comes when, repeated batches, how they are cut into transactions, compaction
in between) must leave no trace.
"""

from __future__ import annotations

import math
import os
import tempfile
from array import array
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from aquarium.agent.wire import Batch, BatchId, MetricChunk
from aquarium.collector import Store

MEMORY = "/dev/shm" if os.path.isdir("/dev/shm") else None  # many small durable commits: keep them off the disk
INCARNATIONS = {0: ["inc-b", "inc-a"], 1: ["inc-c"]}  # per rank; names sort unlike any first sight
KEYS = ["loss", "acc"]
VALUES = st.sampled_from([0.0, -1.0, 2.5, 7.0, math.inf, -math.inf, math.nan])


@st.composite
def batch_sets(draw: st.DrawFn) -> list[Batch]:
    batches = []
    for rank, names in INCARNATIONS.items():
        for name in names:
            for seq in range(draw(st.integers(1, 5))):
                chunks = []
                for key in draw(st.lists(st.sampled_from(KEYS), min_size=0, max_size=2, unique=True)):
                    # near one of a few bases: steps both continue and re-log earlier ones
                    base = draw(st.sampled_from([0, 2, 4]))
                    steps = [base + d for d in draw(st.lists(st.integers(0, 2), min_size=1, max_size=3))]
                    values = draw(st.lists(VALUES, min_size=len(steps), max_size=len(steps)))
                    times = [1.7e9 + i for i in range(len(steps))]
                    chunks.append(
                        MetricChunk(
                            key, array("q", steps).tobytes(), array("d", values).tobytes(), array("d", times).tobytes()
                        )
                    )
                params = draw(st.dictionaries(st.sampled_from(["lr", "depth"]), st.integers(0, 3), max_size=2))
                tags = draw(st.dictionaries(st.sampled_from(["stage"]), st.sampled_from(["a", "b"]), max_size=1))
                batches.append(Batch(BatchId("r1", rank, name, seq), chunks, params=params, tags=tags))
    return batches


def arrival(draw: st.DrawFn, batches: list[Batch]) -> list[list[Batch]]:
    """The batches shuffled, some repeated, cut into transactions."""
    order = draw(st.permutations(batches))
    repeats = draw(st.lists(st.sampled_from(batches), max_size=4))
    stream = list(order)
    for batch in repeats:
        stream.insert(draw(st.integers(0, len(stream))), batch)
    cuts = sorted(draw(st.lists(st.integers(1, len(stream)), max_size=8, unique=True)))
    return [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)]) if a < b]


def snapshot(store: Store) -> dict[str, Any]:
    """Everything reads can tell about the run, NaN made comparable."""
    run = store.get_run("r1")
    series = {
        (key, rank): tuple(_bits(a) for a in _columns(store.read_series("r1", key, rank)))
        for key in store.metric_keys("r1")
        for rank in store.ranks("r1", key)
    }
    summaries = {key: {k: _comparable(v) for k, v in s.items()} for key, s in run["metrics"].items()}
    per_rank = store._reader().execute(
        """SELECT key, rank, count, first_step, last_step, last_value, last_time, min_value, min_step,
                  max_value, max_step FROM series ORDER BY key, rank"""
    )
    incarnations = [{k: v for k, v in i.items() if k != "seen_order"} for i in run["incarnations"]]
    return {
        "series": series,
        "summaries": summaries,
        "per_rank": per_rank.fetchall(),
        "incarnations": incarnations,
        "params": run["params"],
        "tags": run["tags"],
    }


def _columns(series: Any) -> tuple[Any, Any, Any]:
    return series.steps, series.values, series.times


def _bits(column: Any) -> bytes:
    return column.tobytes()


def _comparable(value: Any) -> Any:
    return "nan" if isinstance(value, float) and math.isnan(value) else value


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_any_arrival_of_the_same_batches_yields_the_same_store(data: st.DataObject) -> None:
    batches = data.draw(batch_sets())
    transactions = arrival(data.draw, batches)
    first_sight: dict[tuple[int, str], int] = {}
    for batch in (b for t in transactions for b in t):
        first_sight.setdefault((batch.id.rank, batch.id.incarnation), len(first_sight))
    compact_after = data.draw(st.sets(st.integers(0, len(transactions) - 1), max_size=2))
    with (
        tempfile.TemporaryDirectory(dir=MEMORY) as arrived_dir,
        tempfile.TemporaryDirectory(dir=MEMORY) as expected_dir,
    ):
        with Store(arrived_dir) as arrived, Store(expected_dir) as expected:
            for i, transaction in enumerate(transactions):
                assert arrived.ingest(transaction).conflicts == []
                if i in compact_after:
                    arrived.compact(everything=True)
            expected.ingest(sorted(batches, key=lambda b: (first_sight[(b.id.rank, b.id.incarnation)], b.id.seq)))
            assert snapshot(arrived) == snapshot(expected)
