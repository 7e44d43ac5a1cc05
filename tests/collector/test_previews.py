"""Chunk previews: long series are downsampled from each chunk's extremes, not from every point."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from batches import make_batch

from aquarium.collector import Store
from aquarium.collector.store import preview, window
from aquarium.collector.store.window import pick

CHUNK = 10_000
CHUNKS = 20
SAMPLES = 500  # 200,000 points >= USE_AT_RATIO * 500 = 64,000: the previews serve a whole read
SPIKES = {12_345: 50.0, 150_001: -40.0}


def signal(steps: np.ndarray) -> np.ndarray:
    values = np.sin(steps / 5_000.0) + np.random.default_rng(0).normal(0, 0.01, len(steps))
    for step, value in SPIKES.items():
        values[steps == step] = value
    values[(steps >= 90_000) & (steps < 90_010)] = math.nan  # a gap the plot must show
    return values


def sql(store: Store, query: str) -> Any:
    return store._write("test", lambda conn: conn.execute(query).fetchall())


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    store = Store(tmp_path / "data")
    steps = np.arange(CHUNK * CHUNKS)
    values = signal(steps)
    store.ingest(
        [
            make_batch(
                seq, steps[seq * CHUNK : (seq + 1) * CHUNK].tolist(), values[seq * CHUNK : (seq + 1) * CHUNK].tolist()
            )
            for seq in range(CHUNKS)
        ]
    )
    yield store
    store.close()


def test_a_preview_holds_each_blocks_min_max_first_nan_and_the_chunk_ends() -> None:
    steps = np.arange(1000, 1000 + 700)
    values = np.cos(steps / 7.0)
    values[130], values[131], values[400] = 9.0, -9.0, math.nan
    values[650:700] = math.nan  # an all-NaN tail
    rows = preview.read(preview.build(steps, values, steps * 0.5) or b"")
    picked = set(rows["step"].tolist())
    for b in range(0, 650, preview.BLOCK):
        block = values[b : min(b + preview.BLOCK, 650)]
        assert steps[b + int(np.nanargmin(block))] in picked and steps[b + int(np.nanargmax(block))] in picked
    assert {1130, 1131, 1400, 1650, 1000, 1699} <= picked  # the spikes, the first NaNs, first and last
    assert np.array_equal(rows["step"], np.sort(rows["step"])) and len(rows) < len(steps) / 8
    assert np.array_equal(rows["time"], rows["step"] * 0.5)
    assert preview.build(steps[:100], values[:100], steps[:100] * 0.5) is None  # small: read raw


def test_a_long_read_uses_the_previews_not_the_points(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    full = store.read_series("r1", "loss")

    def whole_series(*args: object, **kwargs: object) -> None:
        raise AssertionError("the whole series was read")

    monkeypatch.setattr(window, "read_columns", whole_series)
    w = store.read_window("r1", "loss", samples=SAMPLES)
    assert 0 < len(w) <= SAMPLES and w.total == CHUNK * CHUNKS
    assert w.steps[0] == 0 and w.steps[-1] == CHUNK * CHUNKS - 1
    raw = dict(zip(full.steps.tolist(), full.values.tolist()))
    assert all(
        raw[s] == v or (math.isnan(raw[s]) and math.isnan(v)) for s, v in zip(w.steps.tolist(), w.values.tolist())
    )
    assert w.times is not None and np.array_equal(w.times, full.times[w.steps])  # each point's own log time
    for step, value in SPIKES.items():  # the extremes survive, as they do from the raw points
        assert value in w.values and step in w.steps
    assert np.isnan(w.values).any()  # and so does the gap


def test_previewed_and_raw_downsampling_draw_the_same_curve(store: Store) -> None:
    full = store.read_series("r1", "loss")
    w = store.read_window("r1", "loss", samples=SAMPLES, times=False)
    exact = pick(full.steps, full.values, SAMPLES)
    assert exact is not None
    on_grid = np.interp(np.arange(0, CHUNK * CHUNKS, 100), w.steps, np.nan_to_num(w.values))
    from_raw = np.interp(np.arange(0, CHUNK * CHUNKS, 100), full.steps[exact], np.nan_to_num(full.values[exact]))
    assert np.median(np.abs(on_grid - from_raw)) < 0.05  # the sine's amplitude is 1: the same shape


def test_a_range_counts_its_raw_points_and_keeps_its_ends(store: Store) -> None:
    start, end = 5_555, 187_777  # inside chunks: the edge chunks are read raw and cut
    w = store.read_window("r1", "loss", samples=SAMPLES, start=start, end=end)
    assert w.total == end - start + 1 and w.steps[0] == start and w.steps[-1] == end
    assert len(w) <= SAMPLES and 12_345 in w.steps
    small = store.read_window("r1", "loss", samples=SAMPLES, start=1_000, end=40_000)  # < 64,000 points: raw
    full = store.read_series("r1", "loss")
    keep = pick(full.steps[1_000:40_001], full.values[1_000:40_001], SAMPLES)
    assert keep is not None and np.array_equal(small.steps, full.steps[1_000:40_001][keep])


def test_chunks_without_previews_are_read_raw(store: Store) -> None:
    sql(store, "DELETE FROM chunk_previews")  # as a store written before previews existed
    full = store.read_series("r1", "loss")
    w = store.read_window("r1", "loss", samples=SAMPLES)
    keep = pick(full.steps, full.values, SAMPLES)
    assert keep is not None and np.array_equal(w.steps, full.steps[keep]) and w.total == CHUNK * CHUNKS


def test_previews_go_with_their_chunks(tmp_path: Path) -> None:
    with Store(tmp_path / "data") as store:
        steps = list(range(300))
        for seq in range(10):  # one call each: ten 30-point chunks (one call would make them one chunk)
            store.ingest([make_batch(seq, steps[seq * 30 : (seq + 1) * 30], [1.0] * 30)])
        count = "SELECT count(*) FROM chunk_previews"
        assert sql(store, count)[0][0] == 0  # 30-point chunks: none
        store.compact(everything=True)
        assert sql(store, count)[0][0] == 1  # the merged 300-point chunk has one
        store.ingest([make_batch(0, list(range(1000)), [0.0] * 1000, run="other")])
        assert sql(store, count)[0][0] == 2
        assert store.delete_run("r1")
        assert sql(store, count)[0][0] == 1  # deleted with the run's chunks
