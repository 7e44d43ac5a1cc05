"""Background merging of small chunks, so reads stay fast whatever the batch shape.

Only settled chunks are merged: those whose seqs are all at or below their incarnation's
commit watermark. No batch can arrive later with a seq in between, so merging adjacent settled
chunks keeps the (incarnation, seq) order that last-value-wins relies on.
"""

from __future__ import annotations

import sqlite3
from typing import Any

import numpy as np

from . import codec
from .ingest import MAX_CHUNK_POINTS

SMALL_CHUNK_POINTS = 16384
COMPACT_AT_SMALL_CHUNKS = 16


def series_needing_compaction(conn: sqlite3.Connection, min_small: int = COMPACT_AT_SMALL_CHUNKS) -> list[int]:
    return [row[0] for row in conn.execute("SELECT id FROM series WHERE small_chunks >= ?", (min_small,))]


def compact_series(conn: sqlite3.Connection, series_id: int) -> int:
    """Merge runs of adjacent settled small chunks of one series; returns chunks removed.

    Runs inside its own transaction on the writer thread.
    """
    conn.execute("BEGIN IMMEDIATE")
    try:
        removed = _compact(conn, series_id)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return removed


def _compact(conn: sqlite3.Connection, series_id: int) -> int:
    rows = conn.execute(
        """
        SELECT c.id, c.incarnation_id, c.seq_first, c.seq_last, c.n, c.encoding, i.committed_seq
        FROM chunks c JOIN incarnations i ON i.id = c.incarnation_id
        WHERE c.series_id = ? ORDER BY i.incarnation, c.seq_last""",
        (series_id,),
    ).fetchall()
    removed = 0
    run: list[tuple[Any, ...]] = []

    def flush() -> None:
        nonlocal removed, run
        if len(run) > 1:
            removed += _merge(conn, series_id, run)
        run = []

    for row in rows:
        _, inc_id, _, seq_last, n, _, committed = row
        settled_small = seq_last <= committed and n < SMALL_CHUNK_POINTS
        if not settled_small or (run and (run[-1][1] != inc_id or sum(r[4] for r in run) + n > MAX_CHUNK_POINTS)):
            flush()
        if settled_small:
            run.append(row)
    flush()
    small = conn.execute(
        "SELECT count(*) FROM chunks WHERE series_id = ? AND (encoding = ? OR n < ?)",
        (series_id, codec.RAW, SMALL_CHUNK_POINTS),
    ).fetchone()[0]
    total = conn.execute("SELECT count(*) FROM chunks WHERE series_id = ?", (series_id,)).fetchone()[0]
    # Small chunks that cannot merge yet (unsettled, or alone) are not counted again, so a
    # series is revisited only after enough new ones arrive.
    conn.execute(
        "UPDATE series SET chunks = ?, small_chunks = ? WHERE id = ?",
        (total, 0 if removed or small < COMPACT_AT_SMALL_CHUNKS else small, series_id),
    )
    return removed


def _merge(conn: sqlite3.Connection, series_id: int, run: list[tuple[Any, ...]]) -> int:
    ids = [r[0] for r in run]
    placeholders = ",".join("?" * len(ids))
    blobs = {
        r[0]: r
        for r in conn.execute(f"SELECT id, encoding, steps, vals, times FROM chunks WHERE id IN ({placeholders})", ids)
    }
    columns: dict[str, list[np.ndarray]] = {name: [] for name in ("steps", "values", "times")}
    for chunk_id in ids:
        _, encoding, steps, vals, times = blobs[chunk_id]
        columns["steps"].append(codec.decode_column(encoding, steps, "steps"))
        columns["values"].append(codec.decode_column(encoding, vals, "values"))
        columns["times"].append(codec.decode_column(encoding, times, "times"))
    steps, values, times = (np.concatenate(columns[k]) for k in ("steps", "values", "times"))
    enc = codec.encode(steps, values, times)
    conn.execute(f"DELETE FROM chunks WHERE id IN ({placeholders})", ids)
    conn.execute(
        """INSERT INTO chunks (series_id, incarnation_id, seq_first, seq_last, n, first_step, last_step,
                    encoding, steps, vals, times) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (
            series_id,
            run[0][1],
            run[0][2],
            run[-1][3],
            len(steps),
            int(steps[0]),
            int(steps[-1]),
            enc.encoding,
            enc.steps,
            enc.values,
            enc.times,
        ),
    )
    return len(ids) - 1
