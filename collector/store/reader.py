"""Reading the store: runs, their details, and series as numpy arrays.

Readers use their own connections (WAL), so they never block the writer. A series is the
concatenation of its chunks in precedence order (incarnations in the order the store first saw
them, then seq); when its summary says those steps rise, that is already the answer, otherwise
a re-logged step keeps its last value.
"""

from __future__ import annotations

import json
import math
import sqlite3
from dataclasses import dataclass
from typing import Any

import numpy as np

from aquarium.agent.errors import RunNotFoundError

from .chunks import last_value_per_step, read_columns


@dataclass(frozen=True)
class Series:
    """One rank's points of one metric, sorted by step, one value per step."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


@dataclass(frozen=True)
class Aggregate:
    """Across ranks, per step: mean, min, max and how many ranks logged it."""

    steps: np.ndarray
    mean: np.ndarray
    min: np.ndarray
    max: np.ndarray
    count: np.ndarray

    def __len__(self) -> int:
        return len(self.steps)


EMPTY = Series(np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.float64))

_RUN_COLUMNS = """r.id, r.name, e.name AS experiment, r.status, r.created_at, r.updated_at, r.started_at,
                  r.ended_at, r.host, r.world_size"""


def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def list_runs(conn: sqlite3.Connection, experiment: str | None = None) -> list[dict[str, Any]]:
    sql = f"""SELECT {_RUN_COLUMNS},
                     (SELECT count(DISTINCT rank) FROM incarnations i WHERE i.run_id = r.id) AS ranks
              FROM runs r LEFT JOIN experiments e ON e.id = r.experiment_id"""
    args: tuple[Any, ...] = ()
    if experiment is not None:
        sql += " WHERE e.name = ?"
        args = (experiment,)
    return _rows(conn.execute(sql + " ORDER BY r.created_at DESC, r.id", args))


def get_run(conn: sqlite3.Connection, run_id: str) -> dict[str, Any]:
    """Everything about one run except its points; raises RunNotFoundError."""
    rows = _rows(
        conn.execute(
            f"""SELECT {_RUN_COLUMNS}, r.meta FROM runs r
                                 LEFT JOIN experiments e ON e.id = r.experiment_id WHERE r.id = ?""",
            (run_id,),
        )
    )
    if not rows:
        raise RunNotFoundError(run_id)
    run = rows[0]
    run["meta"] = json.loads(run["meta"] or "{}")
    run["params"] = {
        k: json.loads(v)
        for k, v in conn.execute("SELECT key, value FROM params WHERE run_id = ? ORDER BY key", (run_id,))
    }
    run["tags"] = dict(conn.execute("SELECT key, value FROM tags WHERE run_id = ? ORDER BY key", (run_id,)))
    run["status_history"] = _rows(
        conn.execute("SELECT status, rank, at FROM status_history WHERE run_id = ? ORDER BY at, rowid", (run_id,))
    )
    run["ranks"] = sorted({r[0] for r in conn.execute("SELECT rank FROM incarnations WHERE run_id = ?", (run_id,))})
    run["incarnations"] = _rows(
        conn.execute(
            """SELECT rank, incarnation, seen_order, committed_seq, max_seq, batches,
                      max_seq + 1 - batches AS missing, conflicts
               FROM incarnations WHERE run_id = ? ORDER BY rank, seen_order""",
            (run_id,),
        )
    )
    run["metrics"] = metric_summaries(conn, run_id)
    return run


def metric_summaries(conn: sqlite3.Connection, run_id: str) -> dict[str, dict[str, Any]]:
    """Per metric across ranks: points stored, last (of the highest step), min and max."""
    summaries: dict[str, dict[str, Any]] = {}
    for row in _rows(conn.execute("SELECT * FROM series WHERE run_id = ? ORDER BY key, rank", (run_id,))):
        s = summaries.setdefault(
            row["key"],
            {
                "count": 0,
                "ranks": 0,
                "last": None,
                "last_step": None,
                "min": None,
                "min_step": None,
                "max": None,
                "max_step": None,
            },
        )
        s["count"] += row["count"]
        s["ranks"] += 1
        if s["last_step"] is None or (row["last_step"] is not None and row["last_step"] > s["last_step"]):
            # SQLite stores NaN as NULL: a last step with no value is a NaN
            last = math.nan if row["last_value"] is None and row["last_step"] is not None else row["last_value"]
            s["last"], s["last_step"] = last, row["last_step"]
        if row["min_value"] is not None and (s["min"] is None or row["min_value"] < s["min"]):
            s["min"], s["min_step"] = row["min_value"], row["min_step"]
        if row["max_value"] is not None and (s["max"] is None or row["max_value"] > s["max"]):
            s["max"], s["max_step"] = row["max_value"], row["max_step"]
    return summaries


def metric_keys(conn: sqlite3.Connection, run_id: str) -> list[str]:
    """The run's metric keys; raises RunNotFoundError for an unknown run (not an empty list)."""
    keys = [r[0] for r in conn.execute("SELECT DISTINCT key FROM series WHERE run_id = ? ORDER BY key", (run_id,))]
    if not keys and conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
        raise RunNotFoundError(run_id)
    return keys


def series_ranks(conn: sqlite3.Connection, run_id: str, key: str) -> list[int]:
    return [
        r[0] for r in conn.execute("SELECT rank FROM series WHERE run_id = ? AND key = ? ORDER BY rank", (run_id, key))
    ]


def read_series(conn: sqlite3.Connection, run_id: str, key: str, rank: int = 0, with_times: bool = True) -> Series:
    row = conn.execute(
        "SELECT id, ordered FROM series WHERE run_id = ? AND key = ? AND rank = ?", (run_id, key, rank)
    ).fetchone()
    if row is None:
        if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
            raise RunNotFoundError(run_id)
        return EMPTY
    series_id, ordered = row
    steps, values, times = read_columns(conn, series_id, with_times=with_times)
    if not len(steps):
        return EMPTY
    if not ordered:
        steps, values, times = last_value_per_step(steps, values, times)
    return Series(steps, values, times)


def read_aggregate(conn: sqlite3.Connection, run_id: str, key: str) -> Aggregate:
    """Mean, min and max across ranks at each step (NaN values are left out of each)."""
    ranks = series_ranks(conn, run_id, key)
    per_rank = [read_series(conn, run_id, key, r, with_times=False) for r in ranks]
    if not per_rank:
        read_series(conn, run_id, key)  # raises RunNotFoundError for an unknown run
    return aggregate(per_rank)


def aggregate(per_rank: list[Series]) -> Aggregate:
    """Mean, min and max of the ranks' series at each step any of them logged (NaN left out)."""
    present = [s for s in per_rank if len(s)]
    if not present:
        empty = np.empty(0, np.float64)
        return Aggregate(np.empty(0, np.int64), empty, empty, empty, np.empty(0, np.int64))
    steps = np.concatenate([s.steps for s in present])
    values = np.concatenate([s.values for s in present])
    order = np.argsort(steps, kind="stable")
    steps, values = steps[order], values[order]
    starts = np.flatnonzero(np.concatenate(([True], steps[1:] != steps[:-1])))  # np.unique would sort again
    valid = ~np.isnan(values)
    counts = np.add.reduceat(valid.astype(np.int64), starts)
    sums = np.add.reduceat(np.where(valid, values, 0.0), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    mins = np.minimum.reduceat(np.where(valid, values, np.inf), starts)
    maxs = np.maximum.reduceat(np.where(valid, values, -np.inf), starts)
    mins[counts == 0] = np.nan
    maxs[counts == 0] = np.nan
    return Aggregate(steps[starts], mean, mins, maxs, counts)


def downsample(steps: np.ndarray, values: np.ndarray, max_points: int) -> np.ndarray:
    """Indices of at most ``max_points`` points that keep the curve's shape (MinMaxLTTB), first
    and last included. ``steps`` rise strictly; when they are contiguous (every step logged, the
    usual case) they are left out: equally spaced x is the same curve, and tsdownsample bins it
    about seven times faster (a 1M-point series in under 1 ms instead of 5)."""
    if len(steps) <= max_points:
        return np.arange(len(steps))
    from tsdownsample import MinMaxLTTBDownsampler, NaNMinMaxLTTBDownsampler

    sampler = NaNMinMaxLTTBDownsampler() if np.isnan(values).any() else MinMaxLTTBDownsampler()
    n_out = max(max_points, 3)
    if int(steps[-1]) - int(steps[0]) == len(steps) - 1:
        return np.asarray(sampler.downsample(values, n_out=n_out))
    return np.asarray(sampler.downsample(steps, values, n_out=n_out))
