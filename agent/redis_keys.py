"""The whole Redis schema in one place: every key and channel name Aquarium uses."""

from __future__ import annotations

from dataclasses import dataclass

BATCH_FIELD = "b"  # stream entry field holding one packed batch
DEAD_REASON_FIELD = "reason"
DEAD_SOURCE_FIELD = "source_id"
EXPORT_QUEUE = "aquarium-exports"  # RQ queue of export jobs (RQ keys: rq:queue:<name>, rq:job:<id>)


@dataclass(frozen=True)
class RedisKeys:
    prefix: str = "aquarium"

    @property
    def stream(self) -> str:
        """Stream of packed batches (XADD by agents, XREADGROUP by collectors)."""
        return f"{self.prefix}:batches"

    @property
    def group(self) -> str:
        """Consumer group shared by every collector."""
        return f"{self.prefix}:collectors"

    @property
    def dead_letter(self) -> str:
        """Stream of batches that could not be decoded or stored, with the reason."""
        return f"{self.prefix}:dead"

    @property
    def store(self) -> str:
        """String ``store-id host:path``: the one store this prefix's collectors write into (expires unless renewed)."""
        return f"{self.prefix}:store"

    @property
    def api(self) -> str:
        """Hash: field ``url`` -> the HTTP API agents upload artifacts to (HSET by a collector serving it)."""
        return f"{self.prefix}:api"

    def watermarks(self, run: str) -> str:
        """Hash: field ``rank/incarnation`` -> highest contiguous seq the store has committed."""
        return f"{self.prefix}:wm:{{{run}}}"

    @staticmethod
    def watermark_field(rank: int, incarnation: str) -> str:
        return f"{rank}/{incarnation}"

    def live(self, run: str) -> str:
        """Pub/sub channel: msgpack, what each commit stored for ``run`` (points per key and rank, run changes)."""
        return f"{self.prefix}:live:{run}"

    @property
    def live_runs(self) -> str:
        """Pub/sub channel: msgpack ``{run, new, status, params, tags, meta}`` when a commit changed a run."""
        return f"{self.prefix}:live:runs"

    def committed(self, run: str) -> str:
        """Pub/sub channel: a tiny notice after each commit for ``run`` (``finish()`` waits on it)."""
        return f"{self.prefix}:committed:{run}"
