"""What a run's shipper counts (``run.stats``) and what ``finish()`` reports."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class ShipperStats:
    """Counters a user can read (``run.stats``) and that ``finish()`` reports."""

    points: int = 0
    batches: int = 0
    batches_sent: int = 0
    batches_spooled: int = 0
    batches_replayed: int = 0
    batches_resent: int = 0
    # Two counters, each written by one side only: a `+=` from two threads can lose counts.
    dropped_in_shipper: int = 0  # by the shipper thread
    dropped_at_queue: int = 0  # by logging threads, under the run's overflow lock
    unconfirmed_points: int = 0  # handed to Redis, never confirmed, not saved: stored unless Redis lost them
    redis_errors: int = 0
    committed_seq: int = -1
    last_error: str = ""
    # Artifacts: logged by the logging threads (under the run's artifact lock), uploaded and
    # failed by the uploader thread, dropped by the shipper (a record that could not be packed).
    artifacts_logged: int = 0
    artifacts_uploaded: int = 0
    artifacts_failed: int = 0
    artifacts_dropped: int = 0
    artifact_bytes_uploaded: int = 0

    @property
    def dropped_points(self) -> int:
        return self.dropped_in_shipper + self.dropped_at_queue

    @property
    def artifacts_pending(self) -> int:
        """Logged, and neither uploaded nor failed for good: in ``<spool dir>/uploads/``."""
        return max(0, self.artifacts_logged - self.artifacts_uploaded - self.artifacts_failed)


@dataclass
class FinishReport:
    """What finish() achieved: everything is either committed, in Redis, or in a spool file."""

    points: int
    batches: int
    committed_seq: int
    last_seq: int
    spooled_files: list[str] = field(default_factory=list)
    dropped_points: int = 0
    # Handed to Redis but neither committed nor saved to the spool when the process finished
    # (Redis was unreachable and the disk refused them): stored, unless Redis lost them too.
    unconfirmed_points: int = 0
    timed_out: bool = False
    artifacts_logged: int = 0
    artifacts_uploaded: int = 0
    artifacts_pending: int = 0  # left for `aquarium sync` (their records are in <spool dir>/uploads/)
    artifacts_failed: int = 0  # refused by the collector (400/413/401): the reasons were logged
