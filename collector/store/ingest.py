"""Writing batches: one transaction for many batches, with the batch-id ledger in it.

A batch whose id is already in the ledger is skipped, so redelivery (Redis resends, spool
replays, reclaimed pending entries) changes nothing: exactly-once in effect. Points are stored
columnar: one chunk row per series per run of contiguous seqs, plus a per-series summary row
updated in the same transaction. Runs on the writer thread only.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aquarium.agent.statuses import TERMINAL_STATUSES
from aquarium.agent.wire import Batch, MetricChunk

from . import codec

PACK_AT_POINTS = 4096  # chunks this large are compressed at ingest; smaller ones wait for compaction
MAX_CHUNK_POINTS = 131072

IncKey = tuple[str, int, str]


@dataclass
class IngestResult:
    stored: int = 0
    duplicates: int = 0
    points: int = 0
    watermarks: dict[IncKey, int] = field(default_factory=dict)
    runs: set[str] = field(default_factory=set)
    gaps: dict[IncKey, int] = field(default_factory=dict)

    def merge(self, other: "IngestResult") -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.points += other.points
        self.watermarks.update(other.watermarks)
        self.runs |= other.runs
        self.gaps.update(other.gaps)


def ingest(conn: sqlite3.Connection, batches: Iterable[Batch], now: float | None = None) -> IngestResult:
    """Store ``batches`` in one transaction; duplicates (by batch id) are skipped."""
    now = time.time() if now is None else now
    result = IngestResult()
    groups: dict[IncKey, dict[int, Batch]] = defaultdict(dict)
    for batch in batches:
        key = (batch.id.run, batch.id.rank, batch.id.incarnation)
        if batch.id.seq in groups[key]:
            result.duplicates += 1
        groups[key][batch.id.seq] = batch
    conn.execute("BEGIN IMMEDIATE")
    try:
        for inc_key, by_seq in groups.items():
            _ingest_incarnation(conn, inc_key, by_seq, now, result)
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return result


def _ingest_incarnation(
    conn: sqlite3.Connection, inc_key: IncKey, by_seq: dict[int, Batch], now: float, result: IngestResult
) -> None:
    run_id, rank, incarnation = inc_key
    inc_id, committed = _incarnation(conn, run_id, rank, incarnation, now)
    seqs = sorted(by_seq)
    candidates = [s for s in seqs if s > committed]
    existing: set[int] = set()
    if candidates:
        existing = {
            row[0]
            for row in conn.execute(
                "SELECT seq FROM batches WHERE incarnation_id = ? AND seq BETWEEN ? AND ?",
                (inc_id, candidates[0], candidates[-1]),
            )
        }
    fresh = [by_seq[s] for s in candidates if s not in existing]
    result.duplicates += len(seqs) - len(fresh)
    if not fresh:
        if committed >= 0:  # republish: after a Redis restart the agent needs to hear it again
            result.watermarks[inc_key] = committed
        return
    conn.executemany(
        "INSERT INTO batches (incarnation_id, seq, received_at, points) VALUES (?, ?, ?, ?)",
        [(inc_id, b.id.seq, now, b.point_count) for b in fresh],
    )
    _ensure_run(conn, run_id, now)
    for batch in fresh:
        _apply_events(conn, batch, now)
    result.points += _store_metrics(conn, run_id, rank, incarnation, inc_id, fresh)
    result.stored += len(fresh)
    result.runs.add(run_id)
    new_committed = _advance_watermark(conn, inc_id, committed, fresh[0].id.seq)
    # running counters: counting the ledger would cost time proportional to the run's length
    max_seq, batch_count = conn.execute(
        """UPDATE incarnations SET committed_seq = ?, max_seq = max(max_seq, ?), batches = batches + ?
           WHERE id = ? RETURNING max_seq, batches""",
        (new_committed, fresh[-1].id.seq, len(fresh), inc_id),
    ).fetchone()
    conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (now, run_id))
    if new_committed >= 0:
        result.watermarks[inc_key] = new_committed
    if max_seq > new_committed:  # seqs missing below the highest one: lost or still in flight
        result.gaps[inc_key] = max_seq + 1 - batch_count


def _incarnation(conn: sqlite3.Connection, run_id: str, rank: int, incarnation: str, now: float) -> tuple[int, int]:
    conn.execute(
        "INSERT OR IGNORE INTO incarnations (run_id, rank, incarnation, first_seen) VALUES (?, ?, ?, ?)",
        (run_id, rank, incarnation, now),
    )
    row = conn.execute(
        "SELECT id, committed_seq FROM incarnations WHERE run_id = ? AND rank = ? AND incarnation = ?",
        (run_id, rank, incarnation),
    ).fetchone()
    return row[0], row[1]


def _advance_watermark(conn: sqlite3.Connection, inc_id: int, committed: int, lowest_fresh: int) -> int:
    """The new highest contiguous seq: it moves only when this transaction filled the next seq."""
    if lowest_fresh != committed + 1:
        return committed
    for (seq,) in conn.execute(
        "SELECT seq FROM batches WHERE incarnation_id = ? AND seq > ? ORDER BY seq", (inc_id, committed)
    ):
        if seq != committed + 1:
            break
        committed = seq
    return committed


def _ensure_run(conn: sqlite3.Connection, run_id: str, now: float) -> None:
    conn.execute(
        "INSERT OR IGNORE INTO runs (id, name, created_at, updated_at, status_at) VALUES (?, ?, ?, ?, 0)",
        (run_id, run_id, now, now),
    )


def _experiment_id(conn: sqlite3.Connection, name: str, now: float) -> int:
    conn.execute("INSERT OR IGNORE INTO experiments (name, created_at) VALUES (?, ?)", (name, now))
    return int(conn.execute("SELECT id FROM experiments WHERE name = ?", (name,)).fetchone()[0])


def _apply_events(conn: sqlite3.Connection, batch: Batch, now: float) -> None:
    run_id = batch.id.run
    meta = batch.meta
    if meta:
        fields: dict[str, Any] = {}
        if isinstance(meta.get("name"), str):
            fields["name"] = meta["name"]
        if isinstance(meta.get("experiment"), str):
            fields["experiment_id"] = _experiment_id(conn, meta["experiment"], now)
        if isinstance(meta.get("host"), str) and batch.id.rank == 0:
            fields["host"] = meta["host"]
        if isinstance(meta.get("world_size"), int):
            fields["world_size"] = meta["world_size"]
        if isinstance(meta.get("started_at"), (int, float)):
            conn.execute(
                "UPDATE runs SET started_at = min(coalesce(started_at, ?), ?) WHERE id = ?",
                (meta["started_at"], meta["started_at"], run_id),
            )
        if batch.id.rank == 0:
            fields["meta"] = json.dumps(meta, default=str)
        if fields:
            assignments = ", ".join(f"{name} = ?" for name in fields)
            conn.execute(f"UPDATE runs SET {assignments} WHERE id = ?", (*fields.values(), run_id))
    if batch.params:
        conn.executemany(
            "INSERT OR REPLACE INTO params (run_id, key, value) VALUES (?, ?, ?)",
            [(run_id, str(k), json.dumps(v, default=str)) for k, v in batch.params.items()],
        )
    if batch.tags:
        conn.executemany(
            "INSERT OR REPLACE INTO tags (run_id, key, value) VALUES (?, ?, ?)",
            [(run_id, str(k), str(v)) for k, v in batch.tags.items()],
        )
    for status, at in batch.status:
        conn.execute(
            "INSERT INTO status_history (run_id, rank, status, at) VALUES (?, ?, ?, ?)",
            (run_id, batch.id.rank, status, at),
        )
        # rank 0 speaks for the run; other ranks only fill in when rank 0 said nothing yet
        conn.execute(
            """UPDATE runs SET status = ?, status_at = ?, ended_at = ?
                        WHERE id = ? AND (? = 0 OR status_at = 0) AND ? >= coalesce(status_at, 0)""",
            (status, at, at if status in TERMINAL_STATUSES else None, run_id, batch.id.rank, at),
        )


def _store_metrics(
    conn: sqlite3.Connection, run_id: str, rank: int, incarnation: str, inc_id: int, fresh: list[Batch]
) -> int:
    """Chunk rows (one per series per run of contiguous seqs) and summary updates."""
    per_key: dict[str, list[tuple[int, MetricChunk]]] = defaultdict(list)
    for batch in fresh:
        for chunk in batch.metrics:
            per_key[chunk.key].append((batch.id.seq, chunk))
    points = 0
    for key, items in per_key.items():
        series = _series(conn, run_id, key, rank)
        for seq_first, seq_last, pieces in _contiguous_runs(items):
            steps = np.frombuffer(b"".join(p.steps for p in pieces), dtype="<i8")
            values = np.frombuffer(b"".join(p.values for p in pieces), dtype="<f8")
            times = np.frombuffer(b"".join(p.times for p in pieces), dtype="<f8")
            for a in range(0, len(steps), MAX_CHUNK_POINTS):
                b = a + MAX_CHUNK_POINTS
                _insert_chunk(
                    conn, series, inc_id, incarnation, seq_first, seq_last, steps[a:b], values[a:b], times[a:b]
                )
            points += len(steps)
        _save_series(conn, series)
    return points


def _contiguous_runs(items: list[tuple[int, MetricChunk]]) -> Iterable[tuple[int, int, list[MetricChunk]]]:
    start = 0
    for i in range(1, len(items) + 1):
        if i == len(items) or items[i][0] != items[i - 1][0] + 1 and items[i][0] != items[i - 1][0]:
            yield items[start][0], items[i - 1][0], [chunk for _, chunk in items[start:i]]
            start = i


class _Series(dict):  # type: ignore[type-arg]
    """A series row being updated within one transaction."""


def _series(conn: sqlite3.Connection, run_id: str, key: str, rank: int) -> _Series:
    conn.execute("INSERT OR IGNORE INTO series (run_id, key, rank) VALUES (?, ?, ?)", (run_id, key, rank))
    cursor = conn.execute("SELECT * FROM series WHERE run_id = ? AND key = ? AND rank = ?", (run_id, key, rank))
    names = [d[0] for d in cursor.description]
    return _Series(zip(names, cursor.fetchone()))


def _insert_chunk(
    conn: sqlite3.Connection,
    series: _Series,
    inc_id: int,
    incarnation: str,
    seq_first: int,
    seq_last: int,
    steps: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
) -> None:
    n = len(steps)
    if n >= PACK_AT_POINTS:
        enc = codec.encode(steps, values, times)
        blobs, small = (enc.steps, enc.values, enc.times), 0
        encoding = enc.encoding
    else:
        blobs, small, encoding = (steps.tobytes(), values.tobytes(), times.tobytes()), 1, codec.RAW
    conn.execute(
        """INSERT INTO chunks (series_id, incarnation_id, seq_first, seq_last, n, first_step, last_step,
                    encoding, steps, vals, times) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
        (series["id"], inc_id, seq_first, seq_last, n, int(steps[0]), int(steps[-1]), encoding, *blobs),
    )
    _update_summary(series, incarnation, seq_first, seq_last, steps, values, times)
    series["chunks"] += 1
    series["small_chunks"] += small


def _update_summary(
    s: _Series,
    incarnation: str,
    seq_first: int,
    seq_last: int,
    steps: np.ndarray,
    values: np.ndarray,
    times: np.ndarray,
) -> None:
    """Fold new points into the summary: count, first/last step, last/min/max value and steps."""
    first_step, last_index = int(steps.min()), len(steps) - 1 - int(np.argmax(steps[::-1]))
    in_order = (incarnation, seq_first) > (s["tail_incarnation"], s["tail_seq"])
    rising = len(steps) < 2 or bool(np.all(steps[1:] > steps[:-1]))
    if s["count"]:
        in_order = in_order and int(steps[0]) > s["last_step"]
    s["ordered"] = int(bool(s["ordered"]) and in_order and rising)
    if (incarnation, seq_last) > (s["tail_incarnation"], s["tail_seq"]):
        s["tail_incarnation"], s["tail_seq"] = incarnation, seq_last
    s["first_step"] = first_step if s["first_step"] is None else min(s["first_step"], first_step)
    new_last = int(steps[last_index])
    if s["last_step"] is None or new_last >= s["last_step"]:
        s["last_step"], s["last_value"], s["last_time"] = new_last, float(values[last_index]), float(times[last_index])
    finite = ~np.isnan(values)
    if finite.any():
        candidates = np.where(finite, values, np.inf)
        i = int(np.argmin(candidates))
        if s["min_value"] is None or values[i] < s["min_value"]:
            s["min_value"], s["min_step"] = float(values[i]), int(steps[i])
        candidates = np.where(finite, values, -np.inf)
        i = int(np.argmax(candidates))
        if s["max_value"] is None or values[i] > s["max_value"]:
            s["max_value"], s["max_step"] = float(values[i]), int(steps[i])
    s["count"] += len(steps)


def _save_series(conn: sqlite3.Connection, s: _Series) -> None:
    names = [k for k in s if k not in ("id", "run_id", "key", "rank")]
    conn.execute(
        f"UPDATE series SET {', '.join(f'{n} = ?' for n in names)} WHERE id = ?", (*(s[n] for n in names), s["id"])
    )
