"""Writing batches: many batches in the writer's one transaction, with the batch-id ledger in it.

A batch the ledger already holds is skipped, so redelivery (Redis resends, spool replays,
reclaimed pending entries) changes nothing: exactly-once in effect. A batch reusing a held id
with other content is a conflict: not stored, reported (see ``ledger``). Points are stored
columnar: one chunk row per series per run of contiguous seqs, plus a per-series summary row
updated in the same transaction (see ``summary``). Runs on the writer thread, inside its
transaction.
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

from . import artifacts, ledger, summary
from .chunks import insert_chunk

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
    # batches not stored because their id is held with other content (the objects passed in)
    conflicts: list[Batch] = field(default_factory=list)
    # what this commit stored (the objects passed in) and the runs it created: published live
    fresh: list[Batch] = field(default_factory=list)
    new_runs: set[str] = field(default_factory=set)

    def merge(self, other: "IngestResult") -> None:
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.points += other.points
        self.watermarks.update(other.watermarks)
        self.runs |= other.runs
        self.gaps.update(other.gaps)
        self.conflicts.extend(other.conflicts)
        self.fresh.extend(other.fresh)
        self.new_runs |= other.new_runs


def ingest(conn: sqlite3.Connection, batches: Iterable[Batch], now: float | None = None) -> IngestResult:
    """Store ``batches``; duplicates are skipped, conflicts reported. Runs inside the writer's transaction."""
    now = time.time() if now is None else now
    result = IngestResult()
    groups: dict[IncKey, list[Batch]] = defaultdict(list)
    for batch in batches:
        groups[(batch.id.run, batch.id.rank, batch.id.incarnation)].append(batch)
    for inc_key, arrived in groups.items():
        _ingest_incarnation(conn, inc_key, arrived, now, result)
    return result


def _ingest_incarnation(
    conn: sqlite3.Connection, inc_key: IncKey, arrived: list[Batch], now: float, result: IngestResult
) -> None:
    run_id, rank, name = inc_key
    inc = ledger.incarnation(conn, run_id, rank, name, now)
    found = ledger.sort_batches(conn, inc, arrived)
    result.duplicates += found.duplicates
    result.conflicts.extend(found.conflicts)
    if not found.fresh and not found.conflicts:
        if inc.committed_seq >= 0:  # republish: after a Redis restart the agent needs to hear it again
            result.watermarks[inc_key] = inc.committed_seq
        return
    committed, max_seq, stored_batches = ledger.record(conn, inc, found, now)
    if found.fresh:
        if _ensure_run(conn, run_id, now):
            result.new_runs.add(run_id)
        result.fresh.extend(found.fresh)
        for batch in found.fresh:
            _apply_events(conn, batch, (inc.order, batch.id.seq), now)
        result.points += _store_metrics(conn, run_id, rank, inc, found.fresh)
        result.stored += len(found.fresh)
        result.runs.add(run_id)
        conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (now, run_id))
    if committed >= 0:
        result.watermarks[inc_key] = committed
    missing = max_seq + 1 - stored_batches
    if missing:  # seqs missing below the highest one: lost or still in flight
        result.gaps[inc_key] = missing


def _ensure_run(conn: sqlite3.Connection, run_id: str, now: float) -> bool:
    """Create the run's row if there is none; True if it was created."""
    cursor = conn.execute(
        "INSERT OR IGNORE INTO runs (id, name, created_at, updated_at, status_at) VALUES (?, ?, ?, ?, 0)",
        (run_id, run_id, now, now),
    )
    return cursor.rowcount > 0


def _experiment_id(conn: sqlite3.Connection, name: str, now: float) -> int:
    conn.execute("INSERT OR IGNORE INTO experiments (name, created_at) VALUES (?, ?)", (name, now))
    return int(conn.execute("SELECT id FROM experiments WHERE name = ?", (name,)).fetchone()[0])


def _apply_events(conn: sqlite3.Connection, batch: Batch, precedence: tuple[int, int], now: float) -> None:
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
    if batch.params or batch.tags:
        _set_params_and_tags(conn, batch, precedence)
    artifacts.insert_records(conn, batch)
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


def _set_params_and_tags(conn: sqlite3.Connection, batch: Batch, precedence: tuple[int, int]) -> None:
    """A param or tag set twice keeps the value logged last (precedence), whatever arrived last."""
    run_id, (order, seq) = batch.id.run, precedence
    for table, items in (
        ("params", [(run_id, str(k), json.dumps(v, default=str), order, seq) for k, v in batch.params.items()]),
        ("tags", [(run_id, str(k), str(v), order, seq) for k, v in batch.tags.items()]),
    ):
        if items:
            conn.executemany(
                f"""INSERT INTO {table} (run_id, key, value, set_order, set_seq) VALUES (?, ?, ?, ?, ?)
                    ON CONFLICT (run_id, key) DO UPDATE SET
                        value = excluded.value, set_order = excluded.set_order, set_seq = excluded.set_seq
                    WHERE (excluded.set_order, excluded.set_seq) >= ({table}.set_order, {table}.set_seq)""",
                items,
            )


def _store_metrics(
    conn: sqlite3.Connection, run_id: str, rank: int, inc: ledger.Incarnation, fresh: list[Batch]
) -> int:
    """Chunk rows (one per series per run of contiguous seqs) and summary updates."""
    per_key: dict[str, list[tuple[int, MetricChunk]]] = defaultdict(list)
    for batch in fresh:
        for chunk in batch.metrics:
            per_key[chunk.key].append((batch.id.seq, chunk))
    points = 0
    for key, items in per_key.items():
        s = summary.load(conn, run_id, key, rank)
        exact = True
        for seq_first, seq_last, pieces in _contiguous_runs(items):
            steps = np.frombuffer(b"".join(p.steps for p in pieces), dtype="<i8")
            values = np.frombuffer(b"".join(p.values for p in pieces), dtype="<f8")
            times = np.frombuffer(b"".join(p.times for p in pieces), dtype="<f8")
            for a in range(0, len(steps), MAX_CHUNK_POINTS):
                part = slice(a, a + MAX_CHUNK_POINTS)
                small = insert_chunk(conn, s.id, inc.id, seq_first, seq_last, steps[part], values[part], times[part])
                s.chunks += 1
                s.small_chunks += int(small)
                if exact:
                    first, last = (inc.order, seq_first), (inc.order, seq_last)
                    exact = summary.fold(s, first, last, steps[part], values[part], times[part])
                else:
                    s.count += len(steps[part])
            points += len(steps)
        if not exact:
            summary.rebuild(conn, s)
        summary.save(conn, s)
    return points


def _contiguous_runs(items: list[tuple[int, MetricChunk]]) -> Iterable[tuple[int, int, list[MetricChunk]]]:
    start = 0
    for i in range(1, len(items) + 1):
        if i == len(items) or items[i][0] != items[i - 1][0] + 1 and items[i][0] != items[i - 1][0]:
            yield items[start][0], items[i - 1][0], [chunk for _, chunk in items[start:i]]
            start = i
