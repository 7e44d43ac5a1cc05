"""Replaying spool files through Redis: `aquarium sync` for runs that ended offline.

Every valid record is added to the stream; a file is deleted once a collector's commit
watermark covers its highest seq. Sending a batch twice is harmless: the store's ledger skips it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

from .errors import SpoolError
from .redis_keys import BATCH_FIELD, RedisKeys
from .spool import is_locked, read_valid, retire, spool_files

XADD_PIPELINE = 500


@dataclass
class SyncReport:
    files: int = 0
    sent: int = 0
    deleted: int = 0
    kept: int = 0
    uncommitted: int = 0  # sent, waited for, and still not committed
    rejected: int = 0
    torn_bytes: int = 0
    skipped_live: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.rejected or self.uncommitted)


@dataclass
class _Sent:
    path: Path
    run: str
    watermark_field: str
    max_seq: int
    rejected: bool


def sync_through_redis(spool_dir: Path, client: redis.Redis, keys: RedisKeys, wait: float) -> SyncReport:
    """Send every spool file under ``spool_dir`` (except live ones); wait up to ``wait`` seconds
    for the commit of each and delete the committed files (``wait=0``: send and keep)."""
    report = SyncReport()
    sent: list[_Sent] = []
    for path in spool_files(spool_dir):
        if is_locked(path):
            report.skipped_live += 1
            continue
        try:
            valid = read_valid(path)
        except (SpoolError, OSError) as e:
            report.rejected += 1
            report.problems.append(str(e))
            continue
        report.files += 1
        report.torn_bytes += valid.torn_bytes
        report.rejected += len(valid.rejected)
        report.problems.extend(f"{path}: {reason}" for reason in valid.rejected)
        for start in range(0, len(valid.records), XADD_PIPELINE):
            pipe = client.pipeline(transaction=False)
            for record in valid.records[start : start + XADD_PIPELINE]:
                pipe.xadd(keys.stream, {BATCH_FIELD: record})
            pipe.execute()
        report.sent += len(valid.records)
        head = valid.header
        sent.append(
            _Sent(
                path,
                head.run,
                RedisKeys.watermark_field(head.rank, head.incarnation),
                max((b.id.seq for b in valid.batches), default=-1),
                bool(valid.rejected),
            )
        )
    waiting = sent if wait > 0 else []
    deadline = time.monotonic() + wait
    while waiting:
        for item in list(waiting):
            mark = client.hget(keys.watermarks(item.run), item.watermark_field)
            if item.max_seq < 0 or (mark is not None and int(mark) >= item.max_seq):
                waiting.remove(item)
                retire(item.path, item.rejected)
                report.deleted += not item.rejected
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(0.1)
    report.kept = len(waiting) if wait > 0 else len(sent)
    report.uncommitted = len(waiting)
    if waiting:
        report.problems.append(
            f"{len(waiting)} files were not committed within {wait:g}s and are kept: is a "
            "collector running (`aquarium up` / `aquarium collector`)? Sending them again is "
            "harmless."
        )
    return report
