"""Where imported batches go: the batch stream (a collector commits them), or the spool offline.

``StreamDelivery`` XADDs the batches and waits until the collector's commit watermark for
``(run, 0, "import")`` covers the last seq, so a finished import job means a stored run.
``SpoolDelivery`` appends them to a spool file under the data dir, which the collector (or
``aquarium ls``, ``aquarium sync --local``) ingests through the same ledger. Either way a batch
sent twice is a duplicate the store drops.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Protocol

import redis

from aquarium.agent.redis_keys import BATCH_FIELD, RedisKeys
from aquarium.agent.spool import SpoolHeader, SpoolWriter, segment_path

from ..progress import Progress
from .base import INCARNATION, SourceError

XADD_PIPELINE = 200
COMMIT_WAIT = 300.0  # seconds an import job waits for a collector to commit what it sent


class Delivery(Protocol):
    def deliver(self, run_id: str, batches: list[bytes], progress: Progress) -> str:
        """Send every batch; returns what became of them ("committed", "spooled")."""
        ...


class StreamDelivery:
    def __init__(self, client: redis.Redis, keys: RedisKeys, commit_wait: float = COMMIT_WAIT) -> None:
        self.client, self.keys, self.commit_wait = client, keys, commit_wait

    def deliver(self, run_id: str, batches: list[bytes], progress: Progress) -> str:
        total = len(batches)
        for start in range(0, total, XADD_PIPELINE):
            pipe = self.client.pipeline(transaction=False)
            for record in batches[start : start + XADD_PIPELINE]:
                pipe.xadd(self.keys.stream, {BATCH_FIELD: record})
            pipe.execute()
            progress(min(total, start + XADD_PIPELINE), total, "sending")
        key, field = self.keys.watermarks(run_id), RedisKeys.watermark_field(0, INCARNATION)
        deadline = time.monotonic() + self.commit_wait
        while True:
            mark = self.client.hget(key, field)
            if mark is not None and int(mark) >= total - 1:
                progress(total, total, "committed")
                return "committed"
            if time.monotonic() >= deadline:
                raise SourceError(
                    f"sent {total} batches of {run_id} to {self.keys.stream}, but no collector committed them "
                    f"within {self.commit_wait:g}s: is a collector running? They stay in the stream; importing "
                    "again is harmless"
                )
            progress(total, total, "committing")
            time.sleep(0.05)


class SpoolDelivery:
    def __init__(self, data_dir: Path) -> None:
        self.spool_dir = data_dir / "spool"

    def deliver(self, run_id: str, batches: list[bytes], progress: Progress) -> str:
        path = segment_path(self.spool_dir, run_id, 0, INCARNATION, 0)
        try:
            writer = SpoolWriter(path, SpoolHeader(run_id, 0, INCARNATION, time.time()))
        except OSError as e:
            raise SourceError(f"cannot write the spool {path}: {e}") from e
        try:
            writer.append_many(batches)
        finally:
            writer.close()
        progress(len(batches), len(batches), "spooled")
        return "spooled"
