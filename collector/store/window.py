"""Windows: the part of one series (or of its aggregate across ranks) that a plot asks for.

    store.read_window(run_id, "loss", rank=1, start=1000, end=5000)
    store.read_window(run_id, "loss", agg="all", samples=2000)   # mean plus the min/max band

A window is a step range (inclusive, either end open) of one rank's series or of the mean, min
or max across ranks per step, downsampled to at most ``samples`` points with MinMaxLTTB.

Guarantees:

- The answer equals slicing the full series (``read_series`` / ``read_aggregate``) to the
  range. For an *ordered* series (its chunks' steps rise in precedence order, the usual case)
  only the chunks overlapping the range are read. An unordered series (re-logged or
  out-of-order steps) is read whole, so that the last value logged for a step wins exactly as
  in ``read_series``: its chunks' first/last steps are not bounds of what they hold.
- The series row and its chunks are read in one read transaction: one snapshot, even while
  the collector writes.
- Downsampling keeps the first and the last point of the range. For an aggregate it picks the
  points on the curve that is drawn as the line (the mean for ``"mean"`` and ``"all"``, the min
  or max curve for ``"min"``/``"max"``); the band of ``"all"`` takes the same steps, so line
  and band stay aligned, at the cost of a band spike between two picked steps being dropped.
- ``total`` is how many points the range holds before downsampling.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

from aquarium.agent.errors import RunNotFoundError

from . import preview
from .chunks import PRECEDENCE, last_value_per_step, read_chunks, read_columns
from .chunks import chunk_range as _chunk_range
from .errors import KeyNotFoundError, WindowError
from .reader import EMPTY, Series, aggregate, downsample

AGGREGATES = ("mean", "min", "max", "all")


@dataclass(frozen=True, eq=False)
class Window:
    """Points of one metric of one run, sorted by step.

    ``rank`` is set for one rank's series, ``agg`` (one of ``AGGREGATES``) for an aggregate
    across ranks; never both. ``times`` (unix seconds) only for a rank window; ``min``/``max``
    only for ``agg="all"``, with ``values`` the mean. Arrays may be read-only views.
    (No ``==``: compare the arrays.)
    """

    run: str
    key: str
    rank: int | None
    agg: str | None
    steps: np.ndarray  # int64
    values: np.ndarray  # float64
    times: np.ndarray | None  # float64
    min: np.ndarray | None  # float64
    max: np.ndarray | None  # float64
    total: int

    def __len__(self) -> int:
        return len(self.steps)


def _check_int(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise WindowError(name, value, "must be an integer")
    if not -(2**63) <= value < 2**63:  # steps are int64; SQLite would raise OverflowError
        raise WindowError(name, value, "must fit in 64 bits")


def check_arguments(rank: int | None, agg: str | None, samples: int | None, start: int | None, end: int | None) -> None:
    """Raise WindowError for arguments no store could answer."""
    for name, value in (("rank", rank), ("samples", samples), ("start", start), ("end", end)):
        _check_int(name, value)
    if rank is not None and agg is not None:
        raise WindowError("agg", agg, f"give either a rank ({rank}) or an aggregate, not both")
    if agg is not None and agg not in AGGREGATES:
        raise WindowError("agg", agg, f"must be one of {', '.join(AGGREGATES)}")
    if samples is not None and samples <= 0:
        raise WindowError("samples", samples, "must be at least 1")
    if start is not None and end is not None and start > end:
        raise WindowError("start", start, f"is after end={end}")


@contextmanager
def _snapshot(conn: sqlite3.Connection) -> Iterator[None]:
    """One read transaction (the reader connections are in autocommit mode)."""
    if conn.in_transaction:
        yield
        return
    conn.execute("BEGIN")
    try:
        yield
    finally:
        conn.execute("COMMIT")


def read_range(
    conn: sqlite3.Connection, series_id: int, ordered: bool, start: int | None, end: int | None, with_times: bool
) -> Series:
    """One series' points with steps in ``start``..``end`` (inclusive), one value per step."""
    ranged = ordered and (start is not None or end is not None)
    steps, values, times = read_columns(
        conn, series_id, with_times=with_times, start=start if ranged else None, end=end if ranged else None
    )
    if not len(steps):
        return EMPTY
    if not ordered:
        steps, values, times = last_value_per_step(steps, values, times)
    lo = 0 if start is None else int(np.searchsorted(steps, start, "left"))
    hi = len(steps) if end is None else int(np.searchsorted(steps, end, "right"))
    if (lo, hi) != (0, len(steps)):
        steps, values = steps[lo:hi], values[lo:hi]
        times = times[lo:hi] if len(times) else times
    return Series(steps, values, times)


def pick(steps: np.ndarray, values: np.ndarray, samples: int | None) -> np.ndarray | None:
    """Indices of at most ``samples`` points, first and last included; None to keep them all."""
    n = len(steps)
    if samples is None or n <= samples:
        return None
    if samples == 1:
        return np.array([n - 1])  # only one point fits: the latest
    if samples == 2:
        return np.array([0, n - 1])
    return np.asarray(downsample(steps, values, samples), dtype=np.intp)


def read_window(
    conn: sqlite3.Connection,
    run_id: str,
    key: str,
    *,
    rank: int | None = None,
    agg: str | None = None,
    samples: int | None = None,
    start: int | None = None,
    end: int | None = None,
    times: bool = True,
) -> Window:
    """See the module docstring; raises WindowError, RunNotFoundError or KeyNotFoundError.
    ``times=False`` leaves a rank window's log times out (``times`` None): a third less to read."""
    check_arguments(rank, agg, samples, start, end)
    with _snapshot(conn):
        rows = conn.execute(
            "SELECT rank, id, ordered FROM series WHERE run_id = ? AND key = ? ORDER BY rank", (run_id, key)
        ).fetchall()
        if not rows:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise RunNotFoundError(run_id)
            raise KeyNotFoundError(run_id, key)
        if agg is None:
            return _rank_window(conn, run_id, key, rows, 0 if rank is None else int(rank), samples, start, end, times)
        per_rank = [read_range(conn, sid, bool(ordered), start, end, with_times=False) for _, sid, ordered in rows]
    return _aggregate_window(run_id, key, agg, per_rank, samples)


def _rank_window(
    conn: sqlite3.Connection,
    run_id: str,
    key: str,
    rows: list[tuple[int, int, int]],
    rank: int,
    samples: int | None,
    start: int | None,
    end: int | None,
    with_times: bool = True,
) -> Window:
    found = [(sid, ordered) for r, sid, ordered in rows if r == rank]
    if not found:
        raise KeyNotFoundError(run_id, key, rank)
    series_id, ordered = found[0]
    previewed = previewed_range(conn, series_id, samples, start, end) if samples is not None and ordered else None
    s = previewed or read_range(conn, series_id, bool(ordered), start, end, with_times=with_times)
    steps, values, times = s.steps, s.values, s.times
    keep = pick(steps, values, samples)
    if keep is not None:
        steps, values = steps[keep], values[keep]
        times = times[keep] if with_times else times
    total = previewed.total if previewed is not None else len(s.steps)
    return Window(run_id, key, rank, None, steps, values, times if with_times else None, None, None, total)


@dataclass(frozen=True, eq=False)
class Previewed:
    """A range as the previews of its inner chunks and the raw points of the rest (``preview``):
    what MinMaxLTTB keeps of it is the same, ``total`` is how many raw points it holds."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray
    total: int


def previewed_range(
    conn: sqlite3.Connection, series_id: int, samples: int, start: int | None, end: int | None
) -> Previewed | None:
    """An ordered series' range from its chunk previews, or None where they would not help: the
    range holds fewer than ``preview.USE_AT_RATIO * samples`` points (its chunks, counted whole)."""
    where, args = _chunk_range(series_id, start, end)
    chunks = conn.execute(
        f"""SELECT c.id, c.n, c.first_step, c.last_step, p.chunk_id IS NOT NULL
            FROM chunks c JOIN incarnations i ON i.id = c.incarnation_id
            LEFT JOIN chunk_previews p ON p.chunk_id = c.id
            WHERE {where} ORDER BY {PRECEDENCE}""",
        args,
    ).fetchall()
    if sum(n for _, n, _, _, _ in chunks) < preview.USE_AT_RATIO * samples:
        return None
    inner = {
        cid
        for cid, _, first, last, has in chunks
        if has and (start is None or first >= start) and (end is None or last <= end)
    }
    parts: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for cid, blob in conn.execute(
        f"SELECT chunk_id, rows FROM chunk_previews WHERE chunk_id IN ({','.join('?' * len(inner))})", list(inner)
    ):
        rows = preview.read(blob)
        parts[cid] = rows["step"], rows["value"], rows["time"]
    total = sum(n for cid, n, _, _, _ in chunks if cid in inner)
    raw = [cid for cid, *_ in chunks if cid not in inner]
    for chunk in read_chunks(conn, series_id, ids=raw) if raw else ():
        lo = 0 if start is None else int(np.searchsorted(chunk.steps, start, "left"))
        hi = len(chunk.steps) if end is None else int(np.searchsorted(chunk.steps, end, "right"))
        parts[chunk.id] = chunk.steps[lo:hi], chunk.values[lo:hi], chunk.times[lo:hi]
        total += hi - lo
    ordered = [parts[cid] for cid, *_ in chunks if cid in parts]
    if not ordered:
        return Previewed(EMPTY.steps, EMPTY.values, EMPTY.times, 0)
    steps, values, times = (np.concatenate([p[i] for p in ordered]) for i in range(3))
    return Previewed(steps.astype(np.int64, copy=False), values, times, total)


def _aggregate_window(run_id: str, key: str, agg: str, per_rank: list[Series], samples: int | None) -> Window:
    a = aggregate(per_rank)
    line = {"mean": a.mean, "all": a.mean, "min": a.min, "max": a.max}[agg]
    steps, lo, hi = a.steps, a.min, a.max
    keep = pick(steps, line, samples)
    if keep is not None:
        steps, line, lo, hi = steps[keep], line[keep], lo[keep], hi[keep]
    band = agg == "all"
    return Window(run_id, key, None, agg, steps, line, None, lo if band else None, hi if band else None, len(a))
