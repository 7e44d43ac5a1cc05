"""A series' summary row: what ``show`` and the run list print without reading any points.

The summary always equals what the series reads back, whatever order its batches arrived in:
``last``/``last_step`` are the value and step of the highest step, min/max (NaN left out) are
over the values the series reads back, each at the lowest step holding it; ``count`` is every
point stored (re-logged steps included: that is what the accounting counts). A chunk is folded
in incrementally when that is exact (it comes after every stored chunk in precedence and logs
no step below the last one); otherwise the summary is rebuilt from the series.

SQLite stores NaN as NULL; a NULL ``last_value`` with a ``last_step`` is a NaN.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass, fields

import numpy as np

from .chunks import Chunk, concat, last_value_per_step, read_chunks

Precedence = tuple[int, int]  # (incarnation seen order, seq)


@dataclass
class Summary:
    id: int
    count: int = 0
    first_step: int | None = None
    last_step: int | None = None
    last_value: float | None = None
    last_time: float | None = None
    min_value: float | None = None
    min_step: int | None = None
    max_value: float | None = None
    max_step: int | None = None
    chunks: int = 0
    small_chunks: int = 0
    ordered: int = 1  # 1 while the chunks, in precedence order, have strictly rising steps
    tail_order: int = -1  # precedence of the last chunk
    tail_seq: int = -1

    @property
    def tail(self) -> Precedence:
        return self.tail_order, self.tail_seq


_COLUMNS = [f.name for f in fields(Summary)]


def load(conn: sqlite3.Connection, run_id: str, key: str, rank: int) -> Summary:
    """The series' summary, creating the series row on first use."""
    conn.execute("INSERT OR IGNORE INTO series (run_id, key, rank) VALUES (?, ?, ?)", (run_id, key, rank))
    row = conn.execute("SELECT id FROM series WHERE run_id = ? AND key = ? AND rank = ?", (run_id, key, rank))
    return load_by_id(conn, row.fetchone()[0])


def load_by_id(conn: sqlite3.Connection, series_id: int) -> Summary:
    row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM series WHERE id = ?", (series_id,)).fetchone()
    summary = Summary(*row)
    if summary.last_step is not None and summary.last_value is None:
        summary.last_value = math.nan
    return summary


def save(conn: sqlite3.Connection, s: Summary) -> None:
    names = _COLUMNS[1:]
    conn.execute(
        f"UPDATE series SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?",
        (*(getattr(s, n) for n in names), s.id),
    )


def fold(
    s: Summary, first: Precedence, last: Precedence, steps: np.ndarray, values: np.ndarray, times: np.ndarray
) -> bool:
    """Fold a new chunk (precedence ``first``..``last``) into ``s`` if that is exact; False
    when only a rebuild is (the chunk precedes a stored one, or re-logs a step below the last)."""
    had_points = s.count > 0
    s.count += len(steps)
    if had_points and (first < s.tail or int(steps.min()) < s.last_step):  # type: ignore[operator]
        return False
    rising = _rising(steps)
    ordered = bool(s.ordered) and rising
    if not rising:
        steps, values, times = last_value_per_step(steps, values, times)
    if had_points and int(steps[0]) == s.last_step:
        # the chunk re-logs the last step: exact only if the value it replaces held no extreme
        old, new = s.last_value, float(values[0])
        if (s.min_step == s.last_step and not new <= old) or (s.max_step == s.last_step and not new >= old):  # type: ignore[operator]
            return False
        ordered = False
    s.ordered = int(ordered)
    s.tail_order, s.tail_seq = last
    s.first_step = int(steps[0]) if s.first_step is None else min(s.first_step, int(steps[0]))
    s.last_step, s.last_value, s.last_time = int(steps[-1]), float(values[-1]), float(times[-1])
    _fold_extremes(s, steps, values)
    return True


def rebuild(conn: sqlite3.Connection, s: Summary) -> None:
    """Recompute everything but ``count`` from the series as it reads back."""
    chunks = list(read_chunks(conn, s.id))
    s.chunks = len(chunks)
    s.first_step = s.last_step = s.last_value = s.last_time = None
    s.min_value = s.min_step = s.max_value = s.max_step = None
    if not chunks:
        s.ordered, s.tail_order, s.tail_seq = 1, -1, -1
        return
    steps, values, times = concat(chunks)
    s.ordered = int(_rising(steps))
    if not s.ordered:
        steps, values, times = last_value_per_step(steps, values, times)
    s.tail_order, s.tail_seq = _order(conn, chunks[-1]), chunks[-1].seq_last
    s.first_step, s.last_step = int(steps[0]), int(steps[-1])
    s.last_value, s.last_time = float(values[-1]), float(times[-1])
    _fold_extremes(s, steps, values)


def _order(conn: sqlite3.Connection, chunk: Chunk) -> int:
    return int(conn.execute("SELECT seen_order FROM incarnations WHERE id = ?", (chunk.incarnation_id,)).fetchone()[0])


def _rising(steps: np.ndarray) -> bool:
    return len(steps) < 2 or bool(np.all(steps[1:] > steps[:-1]))


def _fold_extremes(s: Summary, steps: np.ndarray, values: np.ndarray) -> None:
    """min/max over ``values`` (sorted by step, NaN left out), ties to the lowest step; ``steps``
    come after those of any extreme already held, so on a tie the held one keeps its step."""
    present = np.flatnonzero(~np.isnan(values))
    if not len(present):
        return
    candidates = values[present]
    i = int(present[np.argmin(candidates)])
    if s.min_value is None or values[i] < s.min_value:
        s.min_value, s.min_step = float(values[i]), int(steps[i])
    i = int(present[np.argmax(candidates)])
    if s.max_value is None or values[i] > s.max_value:
        s.max_value, s.max_step = float(values[i]), int(steps[i])
