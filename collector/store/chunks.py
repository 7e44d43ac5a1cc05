"""Chunk rows: the one way chunks are written and the one way they are read back.

A chunk holds one series' points from a run of contiguous seqs of one incarnation, as three
columns (see ``codec``). Ingest and compaction write chunks with ``insert_chunk``; reads,
compaction and summary rebuilds read them with ``read_chunks``, in precedence order: the order
in which the points were logged, so that where a step was logged twice the later value wins.
Series reads use ``read_columns``: the same points in the same order, decoded into one array
per column.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from . import codec, preview

PACK_AT_POINTS = 4096  # chunks this large are compressed when written; smaller ones wait for compaction

# Precedence: incarnations in the order the store first saw them, then seqs within one (the
# pieces of a run of seqs too long for one chunk share its seqs: then the order they were written).
PRECEDENCE = "i.seen_order, c.seq_last, c.id"


@dataclass(frozen=True, slots=True)
class Chunk:
    """One chunk row, decoded."""

    id: int
    incarnation_id: int
    seq_first: int
    seq_last: int
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray


def insert_chunk(
    conn: sqlite3.Connection,
    series_id: int,
    incarnation_id: int,
    seq_first: int,
    seq_last: int,
    steps: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
    pack: bool | None = None,
) -> bool:
    """Write one chunk, packed if ``pack`` (default: if it is large), with its preview if it is
    large enough for one; returns whether it was left raw."""
    small = len(steps) < PACK_AT_POINTS if pack is None else not pack
    if small:
        encoding, blobs = codec.RAW, (steps.tobytes(), values.tobytes(), times.tobytes())
    else:
        enc = codec.encode(steps, values, times)
        encoding, blobs = enc.encoding, (enc.steps, enc.values, enc.times)
    cursor = conn.execute(
        """INSERT INTO chunks (series_id, incarnation_id, seq_first, seq_last, n, first_step, last_step,
                    encoding, steps, vals, times) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (series_id, incarnation_id, seq_first, seq_last, len(steps), int(steps[0]), int(steps[-1]), encoding, *blobs),
    )
    rows = preview.build(steps, values, times)
    if rows is not None:
        conn.execute("INSERT INTO chunk_previews (chunk_id, rows) VALUES (?, ?)", (cursor.lastrowid, rows))
    return small


def chunk_range(series_id: int, start: int | None, end: int | None) -> tuple[str, list[int]]:
    """The WHERE clause (on ``chunks c``) of a series' chunks overlapping ``start``..``end``."""
    return _where(series_id, None, start, end)


def _where(series_id: int, ids: list[int] | None, start: int | None, end: int | None) -> tuple[str, list[int]]:
    where = "c.series_id = ?"
    args: list[int] = [series_id]
    if ids is not None:
        where += f" AND c.id IN ({','.join('?' * len(ids))})"
        args += ids
    if start is not None:
        where += " AND c.last_step >= ?"
        args.append(start)
    if end is not None:
        where += " AND c.first_step <= ?"
        args.append(end)
    return where, args


def read_chunks(
    conn: sqlite3.Connection,
    series_id: int,
    *,
    with_times: bool = True,
    ids: list[int] | None = None,
    start: int | None = None,
    end: int | None = None,
) -> Iterator[Chunk]:
    """A series' chunks (or only those with ``ids``) in precedence order, decoded.

    ``start``/``end`` (inclusive) keep only chunks whose ``first_step``..``last_step`` overlaps
    them. Those are a chunk's first and last steps, its bounds only when its steps rise: callers
    pass a range only for an ordered series (see ``window``).
    """
    times_column = "c.times" if with_times else "NULL"
    where, args = _where(series_id, ids, start, end)
    empty = np.empty(0, np.float64)
    for row in conn.execute(
        f"""SELECT c.id, c.incarnation_id, c.seq_first, c.seq_last, c.encoding, c.steps, c.vals, {times_column}
            FROM chunks c JOIN incarnations i ON i.id = c.incarnation_id
            WHERE {where} ORDER BY {PRECEDENCE}""",
        args,
    ):
        chunk_id, inc_id, seq_first, seq_last, encoding, steps, vals, times = row
        yield Chunk(
            chunk_id,
            inc_id,
            seq_first,
            seq_last,
            codec.decode_column(encoding, steps, "steps"),
            codec.decode_column(encoding, vals, "values"),
            codec.decode_column(encoding, times, "times") if with_times else empty,
        )


def read_columns(
    conn: sqlite3.Connection,
    series_id: int,
    *,
    with_times: bool = True,
    start: int | None = None,
    end: int | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """What ``concat(list(read_chunks(...)))`` returns, decoded straight into three arrays.

    For long reads: one allocation per column instead of one per chunk plus the concatenation,
    which halves the fresh memory a read touches (page faults, not decoding, dominated).
    """
    where, args = _where(series_id, None, start, end)
    rows = conn.execute(
        f"""SELECT c.n, c.encoding, c.steps, c.vals, {"c.times" if with_times else "NULL"}
            FROM chunks c JOIN incarnations i ON i.id = c.incarnation_id
            WHERE {where} ORDER BY {PRECEDENCE}""",
        args,
    ).fetchall()
    total = sum(row[0] for row in rows)
    steps, values = np.empty(total, np.int64), np.empty(total, np.float64)
    times = np.empty(total if with_times else 0, np.float64)
    at = 0
    for n, encoding, steps_blob, values_blob, times_blob in rows:
        part = slice(at, at + n)
        codec.decode_column_into(encoding, steps_blob, "steps", steps[part])
        codec.decode_column_into(encoding, values_blob, "values", values[part])
        if with_times:
            codec.decode_column_into(encoding, times_blob, "times", times[part])
        at += n
    return steps, values, times


def concat(chunks: list[Chunk]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The chunks' columns end to end (no copy for a single chunk)."""
    if len(chunks) == 1:
        return chunks[0].steps, chunks[0].values, chunks[0].times
    return (
        np.concatenate([c.steps for c in chunks]).astype(np.int64, copy=False),
        np.concatenate([c.values for c in chunks]).astype(np.float64, copy=False),
        np.concatenate([c.times for c in chunks]).astype(np.float64, copy=False),
    )


def last_value_per_step(
    steps: np.ndarray, values: np.ndarray, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by step; where a step was logged more than once, keep the last value logged."""
    reversed_steps = steps[::-1]
    unique_steps, first_in_reversed = np.unique(reversed_steps, return_index=True)
    index = len(steps) - 1 - first_in_reversed
    return unique_steps, values[index], (times[index] if len(times) else times)
