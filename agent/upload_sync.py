"""Completing pending uploads later (`aquarium sync`): the records a finished process left.

Same protocol as the uploader thread, one record at a time; records a live process still owns
are left to it (unless they failed for good there: then this is the retry the user asked for).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

from . import pending_uploads as pending
from .api_locator import ApiLocator
from .artifact_http import ContentChanged, Refused, RetryLater
from .pending_uploads import PendingUpload
from .uploader import Attempt, backoff, finish_record, upload_once

RETRY_CAP = 1.0

Started = Callable[[PendingUpload], Callable[[int], None]]


@dataclass
class UploadSyncReport:
    found: int = 0
    uploaded: int = 0
    changed: int = 0  # stored marked changed: the file is not what it was when logged
    skipped_live: int = 0
    failed: int = 0
    problems: list[str] = field(default_factory=list)


def complete_uploads(
    spool_dir: Path, locator: ApiLocator, wait: float, started: Started | None = None
) -> UploadSyncReport:
    """Upload every pending record under ``spool_dir``, retrying what cannot be done yet for up to
    ``wait`` seconds in all (``wait=0``: one try each). ``started(record)`` returns a callback
    for the bytes hashed and sent."""
    report = UploadSyncReport()
    deadline = time.monotonic() + wait
    pending.remove_stale_locks(spool_dir)
    records, unreadable = pending.read_all(spool_dir)
    for path, reason in unreadable:
        report.failed += 1
        report.problems.append(f"{path}: not an upload record ({reason})")
    for _, record in records:
        if record.failed is None and pending.owner_is_alive(spool_dir, record):
            report.skipped_live += 1
            continue
        report.found += 1
        progress = started(record) if started is not None else None
        attempt = Attempt(record, record.size, record.mtime_ns)
        tries = 0
        while True:
            try:
                state = upload_once(attempt, locator, progress)
            except Refused as e:
                report.failed += 1
                reason = f"{e.code}: {e.message}" if e.status == 0 else str(e)
                report.problems.append(f"{record.run}/{record.name} ({record.path}): refused: {reason}")
                pending.write(spool_dir, replace(record, failed=reason))
                break
            except (RetryLater, ContentChanged) as e:
                tries += 1
                if time.monotonic() >= deadline:
                    report.failed += 1
                    report.problems.append(
                        f"{record.run}/{record.name} ({record.path}): not uploaded within {wait:g}s: {e}; "
                        "the record is kept, run `aquarium sync` again"
                    )
                    break
                time.sleep(min(backoff(tries, RETRY_CAP), max(0.0, deadline - time.monotonic())))
                continue
            report.uploaded += 1
            report.changed += state == "changed" or attempt.changed
            finish_record(spool_dir, record)
            break
    return report
