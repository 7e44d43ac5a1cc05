"""Chunk previews: each large chunk's extremes, so that a long series is downsampled from a 32nd
of its points.

A plot of a 1M-point series asks for about its pixel width (``samples``), and MinMaxLTTB starts
by keeping the min and the max of each of ``4 * samples`` buckets. Reading and decoding the whole
series for that dominated the read (a dashboard comparing 10 runs reads 40 such series). So every
chunk of at least ``MIN_POINTS`` is written with a preview: per block of ``BLOCK`` points its
minimum, its maximum and its first NaN (a gap the plot shows), plus the chunk's first and last
point, as (step, value, time) rows. The min and max of a bucket of ``BLOCK`` points or more are
among these, so MinMaxLTTB over the previews keeps the same extremes as over the raw points (up
to the blocks that straddle a bucket's edge); ``window`` uses them when a range holds at least
``USE_AT_RATIO * samples`` points, and reads raw points everywhere else (the range's edge chunks,
small or old chunks without a preview, unordered series, aggregates across ranks).
"""

from __future__ import annotations

import numpy as np

BLOCK = 64  # points a preview row pair summarises: previews are about 2/64 of a chunk
MIN_POINTS = 4 * BLOCK  # smaller chunks are read raw (cheap) and wait for compaction
USE_AT_RATIO = 128  # previews serve a range holding >= 128 * samples points (>= 4 rows per sample)

ROW = np.dtype([("step", "<i8"), ("value", "<f8"), ("time", "<f8")])


def build(steps: np.ndarray, values: np.ndarray, times: np.ndarray) -> bytes | None:
    """A chunk's preview rows as bytes, in the chunk's order; None for a small chunk."""
    n = len(steps)
    if n < MIN_POINTS:
        return None
    values = np.asarray(values, dtype=np.float64)
    nan = np.isnan(values)
    pad = -n % BLOCK  # the last block, padded with NaN: never picked as a min or max
    blocks = np.concatenate([values, np.full(pad, np.nan)]).reshape(-1, BLOCK)
    gaps = np.concatenate([nan, np.zeros(pad, bool)]).reshape(-1, BLOCK)
    offsets = np.arange(len(blocks)) * BLOCK
    with np.errstate(invalid="ignore"):
        lows = np.argmin(np.where(np.isnan(blocks), np.inf, blocks), axis=1) + offsets
        highs = np.argmax(np.where(np.isnan(blocks), -np.inf, blocks), axis=1) + offsets
    first_gaps = (np.argmax(gaps, axis=1) + offsets)[gaps.any(axis=1)]
    keep = np.unique(np.concatenate([lows, highs, first_gaps, [0, n - 1]]))
    keep = keep[keep < n]  # an all-NaN padded block points at its first slot: inside the chunk or not
    rows = np.empty(len(keep), ROW)
    rows["step"], rows["value"] = steps[keep], values[keep]
    rows["time"] = times[keep] if len(times) else np.nan
    return rows.tobytes()


def read(blob: bytes) -> np.ndarray:
    """Preview rows (fields ``step``, ``value``, ``time``) from their bytes."""
    return np.frombuffer(blob, dtype=ROW)
