"""The batch-id ledger: which batches the store holds, written in the same transaction as their rows.

Every batch id ``(run, rank, incarnation, seq)`` is recorded with a digest of the batch's
content. A batch whose id is already recorded with the same digest is a duplicate (Redis
resends, spool replays, reclaimed entries) and is skipped; with a different digest it is a
*conflict*: someone else wrote that id (a forged or corrupted batch). A conflict is never
stored, is counted on its incarnation and reported, and the commit watermark stops below its
seq for good, so an agent is never told that the batch it sent under that id was committed.

Incarnations get a number when the store first sees them; that order, never a wall clock,
decides which of two incarnations logged a step last.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
from dataclasses import dataclass, field

import msgpack

from aquarium.agent.wire import Batch


def digest(batch: Batch) -> bytes:
    """16 bytes of a SHA-256 of everything the batch carries (the same bytes decode to the same digest).

    Hashed through one msgpack encoding, whose framing keeps field boundaries unambiguous."""
    i = batch.id
    body = [i.run, i.rank, i.incarnation, i.seq, batch.params, batch.tags, batch.status, batch.meta]
    for c in batch.metrics:
        body += (c.key, c.steps, c.values, c.times)
    if batch.artifacts:  # appended only when present: digests of batches without artifacts are unchanged
        body.append([dataclasses.astuple(a) for a in batch.artifacts])
    # SHA-256 runs in hardware on current CPUs: twice blake2b's speed on a 100 KB batch here
    return hashlib.sha256(msgpack.packb(body, use_bin_type=True, default=str)).digest()[:16]


def conflict_reason(batch: Batch) -> str:
    """Why a conflicting batch was not stored (the collector dead-letters it with this)."""
    i = batch.id
    return f"conflict: batch id ({i.run}, {i.rank}, {i.incarnation}, {i.seq}) is already stored with other content"


@dataclass(frozen=True)
class Incarnation:
    id: int
    order: int  # when the store first saw it, among all incarnations
    committed_seq: int


@dataclass
class Sorted:
    """One incarnation's batches of a transaction, by what the ledger says about them."""

    fresh: list[Batch] = field(default_factory=list)  # in seq order
    digests: list[bytes] = field(default_factory=list)
    duplicates: int = 0
    conflicts: list[Batch] = field(default_factory=list)


def incarnation(conn: sqlite3.Connection, run_id: str, rank: int, name: str, now: float) -> Incarnation:
    """The incarnation's ledger row, numbered at first sight."""
    conn.execute(
        """INSERT OR IGNORE INTO incarnations (run_id, rank, incarnation, first_seen, seen_order)
           VALUES (?, ?, ?, ?, (SELECT coalesce(max(seen_order), 0) + 1 FROM incarnations))""",
        (run_id, rank, name, now),
    )
    row = conn.execute(
        "SELECT id, seen_order, committed_seq FROM incarnations WHERE run_id = ? AND rank = ? AND incarnation = ?",
        (run_id, rank, name),
    ).fetchone()
    return Incarnation(*row)


def sort_batches(conn: sqlite3.Connection, inc: Incarnation, arrived: list[Batch]) -> Sorted:
    """Split batches (in arrival order) into fresh ones, duplicates and conflicts."""
    result = Sorted()
    recorded = _recorded_digests(conn, inc.id, sorted({b.id.seq for b in arrived}))
    fresh: dict[int, tuple[Batch, bytes]] = {}
    for batch in arrived:
        seq, d = batch.id.seq, digest(batch)
        if seq in recorded:
            known = recorded[seq]
        elif seq in fresh:
            known = fresh[seq][1]
        else:
            fresh[seq] = (batch, d)
            continue
        if known is None or known == d:  # None: a ledger row from before digests, trusted as before
            result.duplicates += 1
        else:
            result.conflicts.append(batch)
    for seq in sorted(fresh):
        result.fresh.append(fresh[seq][0])
        result.digests.append(fresh[seq][1])
    return result


def _recorded_digests(conn: sqlite3.Connection, inc_id: int, seqs: list[int]) -> dict[int, bytes | None]:
    found: dict[int, bytes | None] = {}
    for start in range(0, len(seqs), 500):
        part = seqs[start : start + 500]
        found.update(
            conn.execute(
                f"SELECT seq, digest FROM batches WHERE incarnation_id = ? AND seq IN ({','.join('?' * len(part))})",
                (inc_id, *part),
            ).fetchall()
        )
    return found


def record(conn: sqlite3.Connection, inc: Incarnation, found: Sorted, now: float) -> tuple[int, int, int]:
    """Write the fresh batches' ledger rows and mark conflicted seqs; returns the new commit
    watermark, the highest seq seen and how many batches the incarnation has stored."""
    conn.executemany(
        "INSERT INTO batches (incarnation_id, seq, received_at, points, digest) VALUES (?, ?, ?, ?, ?)",
        [(inc.id, b.id.seq, now, b.point_count, d) for b, d in zip(found.fresh, found.digests)],
    )
    committed = inc.committed_seq
    if found.conflicts:
        conflicted = sorted({b.id.seq for b in found.conflicts})
        conn.executemany(
            "UPDATE batches SET conflicted = 1 WHERE incarnation_id = ? AND seq = ?", [(inc.id, s) for s in conflicted]
        )
        committed = min(committed, conflicted[0] - 1)
    committed = _advance(conn, inc.id, committed)
    seqs = [b.id.seq for b in found.fresh]
    row = conn.execute(
        """UPDATE incarnations SET committed_seq = ?, max_seq = max(max_seq, ?), batches = batches + ?,
                  conflicts = conflicts + ? WHERE id = ? RETURNING max_seq, batches""",
        (committed, max(seqs, default=-1), len(seqs), len(found.conflicts), inc.id),
    ).fetchone()
    return committed, row[0], row[1]


def _advance(conn: sqlite3.Connection, inc_id: int, committed: int) -> int:
    """The highest seq with every seq up to it stored and none of them conflicted."""
    for seq, conflicted in conn.execute(
        "SELECT seq, conflicted FROM batches WHERE incarnation_id = ? AND seq > ? ORDER BY seq", (inc_id, committed)
    ):
        if seq != committed + 1 or conflicted:
            break
        committed = seq
    return committed
