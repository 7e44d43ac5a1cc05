"""Background merging of small chunks, so reads stay fast whatever the batch shape.

Only settled chunks are merged: those whose seqs are all at or below their incarnation's
commit watermark. No batch can arrive later with a seq in between, so merging adjacent settled
chunks keeps the precedence order (see ``chunks``) that last-value-wins relies on.
"""

from __future__ import annotations

import sqlite3

from . import codec
from .chunks import PRECEDENCE, concat, insert_chunk, read_chunks
from .ingest import MAX_CHUNK_POINTS

SMALL_CHUNK_POINTS = 16384
COMPACT_AT_SMALL_CHUNKS = 16


def series_needing_compaction(conn: sqlite3.Connection, min_small: int = COMPACT_AT_SMALL_CHUNKS) -> list[int]:
    return [row[0] for row in conn.execute("SELECT id FROM series WHERE small_chunks >= ?", (min_small,))]


def compact_series(conn: sqlite3.Connection, series_id: int) -> int:
    """Merge runs of adjacent settled small chunks of one series; returns chunks removed.

    Runs inside the writer's transaction.
    """
    rows = conn.execute(
        f"""
        SELECT c.id, c.incarnation_id, c.seq_last, c.n, i.committed_seq
        FROM chunks c JOIN incarnations i ON i.id = c.incarnation_id
        WHERE c.series_id = ? ORDER BY {PRECEDENCE}""",
        (series_id,),
    ).fetchall()
    removed = 0
    run: list[tuple[int, int, int, int, int]] = []

    def flush() -> None:
        nonlocal removed, run
        if len(run) > 1:
            removed += _merge(conn, series_id, [r[0] for r in run])
        run = []

    for row in rows:
        _, inc_id, seq_last, n, committed = row
        settled_small = seq_last <= committed and n < SMALL_CHUNK_POINTS
        if not settled_small or (run and (run[-1][1] != inc_id or sum(r[3] for r in run) + n > MAX_CHUNK_POINTS)):
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


def _merge(conn: sqlite3.Connection, series_id: int, ids: list[int]) -> int:
    """Replace adjacent chunks of one incarnation by one packed chunk."""
    merged = list(read_chunks(conn, series_id, ids=ids))
    steps, values, times = concat(merged)
    conn.execute(f"DELETE FROM chunks WHERE id IN ({','.join('?' * len(ids))})", ids)
    insert_chunk(
        conn,
        series_id,
        merged[0].incarnation_id,
        merged[0].seq_first,
        merged[-1].seq_last,
        steps,
        values,
        times,
        pack=True,
    )
    return len(ids) - 1
