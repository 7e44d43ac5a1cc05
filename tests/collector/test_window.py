"""Windows of series: by rank and aggregated, step ranges read from the chunks they need,
downsampling, and every way to ask for one badly."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
from batches import make_batch
from hypothesis import given, settings
from hypothesis import strategies as st

from aquarium.agent.errors import RunNotFoundError
from aquarium.collector import KeyNotFoundError, Store, Window, WindowError
from aquarium.collector.store import codec
from aquarium.collector.store.chunks import concat, read_chunks, read_columns

MEMORY = "/dev/shm" if os.path.isdir("/dev/shm") else None
NAN = math.nan

# three ranks with different step sets; rank 1 logs a NaN at step 4, rank 2 starts late
RANKS = {
    0: (list(range(10)), [float(s) for s in range(10)]),
    1: ([0, 2, 4, 6, 8, 10], [10.0, 12.0, NAN, 16.0, 18.0, 20.0]),
    2: (list(range(5, 15)), [-float(s) for s in range(5, 15)]),
}


@pytest.fixture
def ranks(store: Store) -> Store:
    store.ingest([make_batch(0, steps, values, rank=r, inc=f"inc-{r}") for r, (steps, values) in RANKS.items()])
    return store


@pytest.fixture
def chunked(store: Store) -> Store:
    """Rank 0 logs steps 0..99 in ten batches, each ingested alone: ten chunks of ten steps."""
    for seq in range(10):
        steps = list(range(seq * 10, seq * 10 + 10))
        store.ingest([make_batch(seq, steps, [s * 0.5 for s in steps])])
    assert store.chunk_count("r1", "loss") == 10
    return store


def same(a: np.ndarray | None, b: np.ndarray | None) -> bool:
    """Equal arrays, NaN equal to NaN (bit patterns compared)."""
    assert a is not None and b is not None
    return a.dtype == b.dtype and np.array_equal(a.view(np.int64), b.view(np.int64))


def test_a_window_defaults_to_rank_zero_and_carries_its_times(ranks: Store) -> None:
    window = ranks.read_window("r1", "loss")
    series = ranks.read_series("r1", "loss", 0)
    assert isinstance(window, Window)
    assert (window.run, window.key, window.rank, window.agg, window.total, len(window)) == (
        "r1",
        "loss",
        0,
        None,
        10,
        10,
    )
    assert window.steps.dtype == np.int64 and window.values.dtype == np.float64
    assert same(window.steps, series.steps) and same(window.values, series.values) and same(window.times, series.times)
    assert window.min is None and window.max is None


def test_a_window_of_another_rank_keeps_its_nan(ranks: Store) -> None:
    window = ranks.read_window("r1", "loss", rank=1)
    assert window.rank == 1 and window.steps.tolist() == [0, 2, 4, 6, 8, 10]
    assert math.isnan(window.values[2]) and window.values[[0, 1, 3]].tolist() == [10.0, 12.0, 16.0]


def test_aggregates_are_per_step_across_ranks_leaving_nan_out(ranks: Store) -> None:
    mean = ranks.read_window("r1", "loss", agg="mean")
    assert mean.steps.tolist() == list(range(15)) and mean.total == 15
    assert mean.rank is None and mean.agg == "mean" and mean.times is None and mean.min is None
    assert mean.values[0] == 5.0  # ranks 0 and 1
    assert mean.values[4] == 4.0  # rank 1's NaN left out
    assert mean.values[6] == (6.0 + 16.0 - 6.0) / 3
    assert mean.values[12] == -12.0
    assert ranks.read_window("r1", "loss", agg="min").values[6] == -6.0
    assert ranks.read_window("r1", "loss", agg="max").values[6] == 16.0
    everything = ranks.read_window("r1", "loss", agg="all")
    reference = ranks.read_aggregate("r1", "loss")
    assert same(everything.steps, reference.steps) and same(everything.values, reference.mean)
    assert same(everything.min, reference.min) and same(everything.max, reference.max)
    for agg in ("mean", "min", "max"):
        window = ranks.read_window("r1", "loss", agg=agg)
        assert window.min is None and window.max is None
        assert same(window.values, getattr(reference, agg))


def test_a_step_where_every_rank_logged_nan_aggregates_to_nan(store: Store) -> None:
    store.ingest([make_batch(0, [0, 1], [NAN, 1.0], rank=0), make_batch(0, [0, 1], [NAN, 3.0], rank=1, inc="b")])
    window = store.read_window("r1", "loss", agg="all")
    assert all(math.isnan(a[0]) for a in (window.values, window.min, window.max))  # type: ignore[index]
    assert window.values[1] == 2.0


@pytest.mark.parametrize(
    ("start", "end"), [(None, None), (3, 7), (None, 4), (8, None), (4, 4), (-5, 2), (13, 100), (20, 30), (11, 11)]
)
@pytest.mark.parametrize("agg", [None, "mean", "min", "max", "all"])
def test_a_step_range_is_the_slice_of_the_whole(ranks: Store, start: int | None, end: int | None, agg: str) -> None:
    window = ranks.read_window("r1", "loss", agg=agg, start=start, end=end)
    whole = ranks.read_window("r1", "loss", agg=agg)
    keep = (whole.steps >= (-(2**63) if start is None else start)) & (
        whole.steps <= (2**63 - 1 if end is None else end)
    )
    assert same(window.steps, whole.steps[keep]) and same(window.values, whole.values[keep])
    assert window.total == int(keep.sum())
    if agg == "all":
        assert same(window.min, whole.min[keep]) and same(window.max, whole.max[keep])  # type: ignore[index]


@pytest.mark.parametrize(("start", "end"), [(0, 99), (15, 34), (20, 29), (29, 30), (None, 5), (95, None), (100, 200)])
def test_a_range_reads_only_the_chunks_it_overlaps_and_answers_like_read_series(
    chunked: Store, start: int | None, end: int | None
) -> None:
    conn = chunked._reader()
    (series_id,) = conn.execute("SELECT id FROM series").fetchone()
    lo, hi = (0 if start is None else start), (99 if end is None else end)
    read = [c.steps[0] for c in read_chunks(conn, series_id, start=start, end=end)]
    assert read == [first for first in range(0, 100, 10) if first + 9 >= lo and first <= hi]
    window = chunked.read_window("r1", "loss", start=start, end=end)
    series = chunked.read_series("r1", "loss")
    keep = (series.steps >= lo) & (series.steps <= hi)
    assert same(window.steps, series.steps[keep]) and same(window.values, series.values[keep])
    assert same(window.times, series.times[keep]) and window.total == int(keep.sum())


def test_relogged_steps_inside_a_range_keep_the_last_value(store: Store) -> None:
    store.ingest([make_batch(0, list(range(10)), [float(s) for s in range(10)])])
    store.ingest([make_batch(1, [4, 5, 6], [40.0, 50.0, 60.0])])
    store.ingest([make_batch(0, [5, 12], [500.0, 12.0], inc="inc-b")])  # a later incarnation wins again
    window = store.read_window("r1", "loss", start=3, end=7)
    assert window.steps.tolist() == [3, 4, 5, 6, 7]
    assert window.values.tolist() == [3.0, 40.0, 500.0, 60.0, 7.0] and window.total == 5
    assert store.read_window("r1", "loss", start=11).steps.tolist() == [12]


@pytest.mark.parametrize("samples", [3, 10, 64, 999])
@pytest.mark.parametrize("agg", [None, "mean", "all"])
def test_samples_downsample_keeping_first_and_last(store: Store, samples: int, agg: str | None) -> None:
    steps = list(range(0, 3000, 3))
    rng = np.random.default_rng(samples)
    values = np.cumsum(rng.normal(size=len(steps)))
    values[[5, 400]] = NAN
    store.ingest([make_batch(0, steps, values.tolist()), make_batch(0, steps, (values * 2).tolist(), rank=1, inc="b")])
    window = store.read_window("r1", "loss", agg=agg, samples=samples)
    whole = store.read_window("r1", "loss", agg=agg)
    assert len(window) <= samples and window.total == len(steps)
    assert window.steps[0] == 0 and window.steps[-1] == steps[-1]
    picked = np.searchsorted(whole.steps, window.steps)
    assert np.all(np.diff(window.steps) > 0) and same(whole.steps[picked], window.steps)
    assert same(whole.values[picked], window.values)
    if agg is None:
        assert same(whole.times[picked], window.times)  # type: ignore[index]
    if agg == "all":  # the band takes the steps picked on the mean
        assert same(whole.min[picked], window.min) and same(whole.max[picked], window.max)  # type: ignore[index]


def test_samples_apply_to_the_range(chunked: Store) -> None:
    window = chunked.read_window("r1", "loss", start=10, end=59, samples=7)
    assert window.total == 50 and len(window) <= 7 and (window.steps[0], window.steps[-1]) == (10, 59)


@pytest.mark.parametrize(("samples", "expected"), [(1, [99]), (2, [0, 99]), (100, list(range(100))), (10**6, None)])
def test_few_samples_and_more_samples_than_points(chunked: Store, samples: int, expected: list[int] | None) -> None:
    window = chunked.read_window("r1", "loss", samples=samples)
    assert window.steps.tolist() == (expected or list(range(100))) and window.total == 100


def test_an_empty_range_is_an_empty_window(chunked: Store) -> None:
    for agg in (None, "all"):
        window = chunked.read_window("r1", "loss", agg=agg, start=500, samples=10)
        assert len(window) == 0 and window.total == 0 and window.steps.dtype == np.int64
        assert window.values.dtype == np.float64


def test_unknown_run_key_and_rank(ranks: Store) -> None:
    with pytest.raises(RunNotFoundError):
        ranks.read_window("nope", "loss")
    with pytest.raises(RunNotFoundError):
        ranks.read_window("nope", "loss", agg="mean")
    with pytest.raises(KeyNotFoundError, match="no metric 'acc'") as caught:
        ranks.read_window("r1", "acc")
    assert (caught.value.run_id, caught.value.key, caught.value.rank) == ("r1", "acc", None)
    with pytest.raises(KeyNotFoundError, match="no metric 'acc'"):
        ranks.read_window("r1", "acc", agg="all")
    with pytest.raises(KeyNotFoundError, match="for rank 7") as caught:
        ranks.read_window("r1", "loss", rank=7)
    assert caught.value.rank == 7 and str(caught.value) == "run 'r1' has no metric 'loss' for rank 7"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"samples": 0}, "samples=0: must be at least 1"),
        ({"samples": -5}, "samples=-5: must be at least 1"),
        ({"start": 9, "end": 3}, "start=9: is after end=3"),
        ({"agg": "median"}, "agg='median': must be one of mean, min, max, all"),
        ({"agg": "mean", "rank": 0}, "agg='mean': give either a rank"),
        ({"samples": 2.5}, "samples=2.5: must be an integer"),
        ({"start": True}, "start=True: must be an integer"),
        ({"rank": "0"}, "rank='0': must be an integer"),
        ({"end": 2**63}, "end=9223372036854775808: must fit in 64 bits"),
        ({"start": -(2**64)}, "start=-18446744073709551616: must fit in 64 bits"),
    ],
)
def test_bad_arguments_raise_window_error(ranks: Store, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(WindowError, match=f"^{message}") as caught:
        ranks.read_window("r1", "loss", **kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)
    with pytest.raises(WindowError):  # arguments are checked before the run is looked up
        ranks.read_window("nope", "loss", **kwargs)  # type: ignore[arg-type]


def test_the_widest_range_is_every_step(ranks: Store) -> None:
    window = ranks.read_window("r1", "loss", agg="mean", start=-(2**63), end=2**63 - 1)
    assert window.steps.tolist() == list(range(15))


def test_read_series_and_read_aggregate_are_unchanged(ranks: Store) -> None:
    assert ranks.read_series("r1", "loss", 2).steps.tolist() == list(range(5, 15))
    aggregate = ranks.read_aggregate("r1", "loss", max_points=5)
    assert len(aggregate) <= 5 and aggregate.steps[0] == 0 and aggregate.steps[-1] == 14


batches_of_steps = st.lists(
    st.tuples(st.booleans(), st.lists(st.integers(0, 60), min_size=1, max_size=15)), min_size=1, max_size=6
)


@settings(max_examples=40, deadline=None)
@given(
    batches=batches_of_steps,
    start=st.none() | st.integers(-5, 65),
    length=st.none() | st.integers(0, 40),
    samples=st.none() | st.integers(1, 30),
)
def test_any_range_of_any_series_is_the_slice_of_read_series(
    batches: list[tuple[bool, list[int]]], start: int | None, length: int | None, samples: int | None
) -> None:
    end = None if length is None else (0 if start is None else start) + length
    with tempfile.TemporaryDirectory(dir=MEMORY) as data_dir, Store(data_dir) as store:
        for seq, (compact, steps) in enumerate(batches):
            batch = make_batch(seq, steps, [float(seq * 100 + s) for s in steps])
            store.ingest([batch])
            if compact:
                store.compact(everything=True)
        series = store.read_series("r1", "loss")
        window = store.read_window("r1", "loss", start=start, end=end)
        keep = (series.steps >= (start if start is not None else -1)) & (
            series.steps <= (end if end is not None else 99)
        )
        assert same(window.steps, series.steps[keep]) and same(window.values, series.values[keep])
        assert same(window.times, series.times[keep])
        sampled = store.read_window("r1", "loss", start=start, end=end, samples=samples)
        assert sampled.total == window.total and len(sampled) <= (samples or window.total)
        if len(sampled):
            assert sampled.steps[-1] == window.steps[-1]
        if len(sampled) > 1:
            assert sampled.steps[0] == window.steps[0]


@pytest.mark.parametrize(("points", "encodings"), [(100, {codec.RAW}), (5000, {codec.RAW, codec.PACKED})])
def test_read_columns_decodes_like_read_chunks(store: Store, points: int, encodings: set[int]) -> None:
    values = [NAN, math.inf, -0.0, *range(points)]
    store.ingest([make_batch(0, list(range(len(values))), values)])  # packed when large
    store.ingest([make_batch(1, [9000, 9001], [1.0, 2.0])])  # a small raw chunk after it
    conn = store._reader()
    assert {e for (e,) in conn.execute("SELECT encoding FROM chunks")} == encodings
    for with_times in (True, False):
        expected = concat(list(read_chunks(conn, 1, with_times=with_times)))
        got = read_columns(conn, 1, with_times=with_times)
        assert all(same(a, b) for a, b in zip(got, expected))
    with pytest.raises(ValueError, match="does not hold 3 points"):
        codec.decode_column_into(codec.PACKED, codec.encode(*(np.zeros(4),) * 3).values, "values", np.empty(3))
