"""Ingesting spool files straight into the store, through the same batch-id ledger.

This is how offline runs (and what an agent spooled at finish) reach a local store without a
server. A file still locked by a live agent is ingested but kept; a finished one is deleted
once its batches are committed. Records that do not belong to the file's (run, rank,
incarnation) are rejected with the reason and the file is kept, renamed ``*.rejected``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aquarium.agent.errors import SpoolError
from aquarium.agent.spool import is_locked, read_valid, retire, spool_files
from aquarium.agent.wire import Batch

from .failures import ingest_isolating, reason_of
from .ingest import IngestResult
from .ledger import conflict_reason

log = logging.getLogger("aquarium.collector.store.spool_ingest")

BATCHES_PER_TRANSACTION = 2000


@dataclass
class SpoolIngestReport:
    files: int = 0
    batches: int = 0
    stored: int = 0
    duplicates: int = 0
    points: int = 0
    torn_bytes: int = 0
    deleted: list[str] = field(default_factory=list)
    kept_live: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)
    result: IngestResult = field(default_factory=IngestResult)


def ingest_spool_dir(
    spool_dir: Path, ingest: Callable[[list[Batch]], IngestResult], delete: bool = True, include_live: bool = True
) -> SpoolIngestReport:
    report = SpoolIngestReport()
    for path in spool_files(spool_dir):
        if include_live or not is_locked(path):
            ingest_spool_file(path, ingest, report, delete=delete)
    return report


def ingest_spool_file(
    path: Path, ingest: Callable[[list[Batch]], IngestResult], report: SpoolIngestReport, delete: bool = True
) -> None:
    live = is_locked(path)
    try:
        valid = read_valid(path)
    except (SpoolError, OSError) as e:
        report.rejected.append((str(path), str(e)))
        log.warning("spool %s skipped: %s", path, e)
        return
    report.files += 1
    report.torn_bytes += valid.torn_bytes
    if valid.torn_bytes and not live:
        log.warning("spool %s: %d bytes of torn or corrupt records were skipped", path, valid.torn_bytes)
    report.rejected.extend((str(path), reason) for reason in valid.rejected)
    for start in range(0, len(valid.batches), BATCHES_PER_TRANSACTION):
        refused = _flush(valid.batches[start : start + BATCHES_PER_TRANSACTION], ingest, report)
        report.rejected.extend((str(path), reason) for reason in refused)
        valid.rejected.extend(refused)
    if live or not delete:
        report.kept_live.append(str(path))
        return
    retire(path, bool(valid.rejected))
    if not valid.rejected:
        report.deleted.append(str(path))


def _flush(pending: list[Batch], ingest: Callable[[list[Batch]], IngestResult], report: SpoolIngestReport) -> list[str]:
    """Store ``pending``; returns why batches were refused (an error that was the batch's fault, or
    a conflicting id). The file holding a refused batch is kept as ``*.rejected``; a store that
    cannot write at all raises StoreUnavailableError."""
    result, refused = ingest_isolating(ingest, pending)
    reasons = [f"batch ({b.id.run}, {b.id.rank}, {b.id.incarnation}, {b.id.seq}): {reason_of(e)}" for b, e in refused]
    reasons.extend(conflict_reason(batch) for batch in result.conflicts)
    report.batches += len(pending)
    report.stored += result.stored
    report.duplicates += result.duplicates
    report.points += result.points
    report.result.merge(result)
    return reasons
