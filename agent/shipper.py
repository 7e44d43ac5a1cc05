"""The shipper thread: moves what the training thread queued to Redis, or to the disk spool.

Its state lives in parts that each own one concern: the ``Cutter`` (queues to packed batches,
contiguous seqs), the ``Outbox`` (batches in memory until the collector's commit watermark
covers them: an XADD reply is not a durable ack), the ``Segments`` (spool files: append, replay
cursor, rewind, drop), the ``Backlog`` (which of the two a batch waits in, and what is dropped)
and the ``Link`` (the Redis connection: backoff, round trips, and restart detection that it
reports, never acts on). Every ``flush_interval`` (at once while the queue is long) the loop
makes one decision: cut new batches; put them in the outbox if the link is up and nothing older
waits in the spool (and the run is not ``durable``), else in the spool; then let the link move
what waits, in small round trips. A restart the link reports rewinds both outbox and spool (the
collector's batch-id ledger absorbs the repeats).

Nothing is lost silently: a batch is dropped only when it never reached Redis and neither the
spool nor the memory bound can hold it, and then its points are counted. One that was handed to
Redis and, at finish, is neither committed nor on disk is counted apart, as unconfirmed: a
server restarted from its AOF may still deliver it. Failures are logged
once per cause and never reach the training thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from . import batcher
from .backlog import Backlog
from .cutter import Cutter
from .identity import Identity
from .link import CommitNotices, Link, LinkState, Reply
from .outbox import Held, Outbox
from .redis_keys import RedisKeys
from .segments import Segments
from .settings import AgentSettings
from .stats import FinishReport, ShipperStats

__all__ = ["FinishReport", "Shipper", "ShipperStats"]

log = logging.getLogger("aquarium.agent.shipper")

SEGMENT_BYTES = 64 << 20
REPLAY_CHUNK_BYTES = 1 << 20  # a replay round trip: small, so a flaky link still makes progress
REPLAY_CHUNK_RECORDS = 256
REPLAY_CHUNKS_PER_CYCLE = 16
SEND_CHUNK_BYTES = 4 << 20  # a send round trip (a resend after a restart may hold 64 MiB)
RUN_ID_CHECK_SECONDS = 1.0
IDLE_POLL_SECONDS = 1.0
NOTICE_WAIT_SECONDS = 0.25  # finish() polls the watermark at least this often, notice or not
LAST_CHANCE_RETRY_SECONDS = 0.1  # finishing with batches the disk refused: how often Redis is retried
# A queue this long is cut at once, without waiting for the interval: it keeps each cut (the
# time the training thread waits for the GIL) short, and the shipper ahead of a fast loop.
CUT_AT_ONCE_ENTRIES = 16_384


class Shipper:
    def __init__(self, ident: Identity, settings: AgentSettings, meta: dict[str, Any]) -> None:
        self.points = batcher.PointQueue()
        # entries logged from threads other than the run's own: appended whole (one atomic
        # deque append), moved into a queue only this thread writes
        self.other_threads: deque[tuple[int, float, tuple[str, ...], tuple[float, ...]]] = deque()
        self.events: deque[tuple[str, Any]] = deque()
        self.stats = ShipperStats()
        self._ident = ident
        self._settings = settings
        self._keys = RedisKeys(settings.prefix)
        self._wm_key = self._keys.watermarks(ident.run_id)
        self._cutter = Cutter(self.points, self.other_threads, self.events, ident, meta, self.stats, self._drop)
        self._outbox = Outbox()
        self._segments = Segments(settings.spool_dir, ident, SEGMENT_BYTES)
        self._backlog = Backlog(self._outbox, self._segments, settings.max_memory_bytes, self.stats, self._drop)
        self._link = Link(settings.redis_url, settings.socket_timeout, RUN_ID_CHECK_SECONDS, self._link_failed)
        self._collector_seen = False
        self._last_poll = 0.0
        self._logged_causes: set[str] = set()
        self._wake = threading.Event()
        self._closing = False
        self._commit_wait = 0.0  # set by close()
        self._flush_requests = 0
        self._flushed = threading.Condition()
        self._flushed_count = 0
        self._failed_through = 0  # the newest flush request a failed cycle answered
        self._thread = threading.Thread(target=self._loop, name=f"aquarium-shipper-{ident.run_id}", daemon=True)

    # -- called from the training thread -------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Ship everything queued so far (to Redis or the spool); False if it took too long, or
        the cycle that answered failed (the error is in ``stats.last_error``), or shipping ended."""
        with self._flushed:
            self._flush_requests += 1
            target = self._flush_requests
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._flushed:
            while self._flushed_count < target and self._thread.is_alive():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._flushed.wait(left)
            return self._flushed_count >= target and self._failed_through < target

    def close(self, timeout: float, commit_wait: float) -> FinishReport:
        """Ship the rest, wait up to ``commit_wait`` for the commit, spool what is unconfirmed."""
        self._commit_wait = commit_wait
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        timed_out = self._thread.is_alive()
        if timed_out:
            log.warning(
                "run %s: the shipper did not finish within %.1fs; unsent points stay in memory until the process exits",
                self._ident.run_id,
                timeout,
            )
        return FinishReport(
            points=self.stats.points,
            batches=self.stats.batches,
            committed_seq=self.stats.committed_seq,
            last_seq=self._cutter.next_seq - 1,
            spooled_files=self._segments.paths,
            dropped_points=self.stats.dropped_points,
            unconfirmed_points=self.stats.unconfirmed_points,
            timed_out=timed_out,
        )

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        if self._settings.mode == "online":
            self._guard("adopt", self._segments.adopt_orphans)
        while True:
            if len(self.points) < CUT_AT_ONCE_ENTRIES:
                self._wake.wait(self._settings.flush_interval)
            self._wake.clear()
            closing = self._closing
            with self._flushed:
                requested = self._flush_requests
            if closing:
                self._link.retry_now()
            failed = False
            try:
                self._cycle(catch_up=closing or requested > self._flushed_count)
            except Exception as e:  # a bug here must never kill shipping silently
                self._note_error("shipper-bug", e)
                failed = True
            with self._flushed:
                if failed:
                    self._failed_through = requested
                self._flushed_count = requested
                self._flushed.notify_all()
            if closing:
                self._guard("shipper-bug", self._shutdown)
                return

    def _guard(self, cause: str, step: Callable[[], object]) -> None:
        try:
            step()
        except Exception as e:  # a bug here must never kill shipping silently
            self._note_error(cause, e)

    def _cycle(self, catch_up: bool) -> None:
        """One decision: where the new batches go, then what the link moves. Only a flush or
        finish (``catch_up``) waits for a connection attempt; while one runs in the background,
        new batches wait in memory (within the bound), and go to the spool if it fails."""
        fresh = self._cutter.cut()
        try:
            online = self._settings.mode == "online"
            reply = self._link.connect(wait=catch_up) if online else None
            connecting = reply is None and self._link.state is LinkState.CONNECTING
        except BaseException:
            for held in fresh:  # cut but not placed: kept in memory, shipped or counted later
                self._outbox.hold(held)
            raise
        if (reply is None and not connecting) or self._segments.replay_pending or self._settings.durable:
            self._backlog.park(fresh)  # older batches wait in the spool (seq order), or the link is down
            self._backlog.settle()
        else:
            for held in fresh:
                self._outbox.hold(held)
        if reply is not None:
            self._exchange(reply, catch_up)
        self._backlog.spill_over_bound()
        self._backlog.settle()

    # -- memory and spool ----------------------------------------------------------------------
    def _drop(self, points: int, cause: str, error: Exception | None) -> None:
        """Count points that are lost for good: never silently."""
        self.stats.dropped_in_shipper += points
        if error is not None:
            self._note_error(cause, error)
        if points:
            log.error("run %s: %d points dropped (%s)", self._ident.run_id, points, cause)

    # -- the link ------------------------------------------------------------------------------
    def _exchange(self, reply: Reply, catch_up: bool) -> None:
        """Send what waits in memory, then replay the spool in small round trips."""
        self._heard(reply)
        sends = _in_round_trips(self._outbox.unsent(), SEND_CHUNK_BYTES)
        for batches in sends or ([[]] if self._watermark_due() else []):
            reply_or_none = self._round_trip([h.data for h in batches], "xadd")
            if reply_or_none is None:
                if not self._link.refused:  # it may have landed before the link failed
                    self._outbox.mark_handed_over(batches)
                return
            self._outbox.mark_sent(batches)
            self.stats.batches_sent += len(batches)
            self._heard(reply_or_none)
        rounds = 0
        while self._segments.replay_pending and (catch_up or rounds < REPLAY_CHUNKS_PER_CYCLE):
            chunk = self._segments.next_chunk(REPLAY_CHUNK_BYTES, REPLAY_CHUNK_RECORDS)
            if chunk is None:
                break
            reply_or_none = self._round_trip(chunk.records, "replay")
            if reply_or_none is None:
                return
            self._segments.mark_replayed(chunk)  # before _heard: a restart found now rewinds it
            self.stats.batches_replayed += len(chunk.records)
            self._heard(reply_or_none)
            rounds += 1

    def _round_trip(self, records: list[bytes], cause: str, check: bool = False) -> Reply | None:
        self._last_poll = time.monotonic()
        fields = self._segments.watermark_fields()
        return self._link.exchange(records, self._keys.stream, self._wm_key, fields, cause, check)

    def _heard(self, reply: Reply) -> None:
        if reply.restarted:
            log.warning(
                "run %s: Redis restarted (run_id changed); resending %d uncommitted batches",
                self._ident.run_id,
                len(self._outbox) + len(self._segments),
            )
            self.stats.batches_resent += self._outbox.rewind()
            self._segments.rewind()
        for watermark_field, seq in reply.watermarks.items():
            if watermark_field == self._segments.own_field:
                self._collector_seen = True
                seq = self.stats.committed_seq = max(seq, self.stats.committed_seq)
                self._outbox.confirm(seq)
            self._segments.confirm(watermark_field, seq)

    def _watermark_due(self) -> bool:
        """Poll only while something waits for the commit, and slowly until a collector answered:
        each poll is a round trip that costs the training process CPU."""
        if not (self._outbox or self._segments):
            return False
        return self._collector_seen or time.monotonic() - self._last_poll >= IDLE_POLL_SECONDS

    def _link_failed(self, cause: str, error: Exception) -> None:
        """Unknown whether the last batches landed: keep them on disk, to be resent."""
        self.stats.redis_errors += 1
        self._note_error(cause, error)
        self.stats.batches_resent += self._outbox.rewind()
        self._backlog.spill(self._outbox.unsent())

    def _note_error(self, cause: str, error: Exception) -> None:
        self.stats.last_error = f"{cause}: {error}"
        if cause not in self._logged_causes:
            self._logged_causes.add(cause)
            log.warning(
                "run %s: %s failed (%s: %s); batches go to the spool at %s and are replayed later",
                self._ident.run_id,
                cause,
                type(error).__name__,
                error,
                self._settings.spool_dir,
            )

    # -- finishing -----------------------------------------------------------------------------
    def _collector_expected(self) -> bool:
        """A collector committed for this run, or created its consumer group on the stream.

        A run shorter than one flush interval never saw a watermark; the group tells it that a
        collector is there to wait for (bounded by ``commit_wait``). Checks the server first, so
        batches a restarted Redis lost are resent before the wait.
        """
        if self._link.last_failure != "connect":  # it was up a moment ago: try again now
            self._link.retry_now()
        for _ in range(2):
            reply = self._link.connect(wait=True)
            if reply is None:  # Redis is not there
                return False
            self._heard(reply)
            reply = self._round_trip([], "watermark", check=True)
            if reply is not None:
                self._heard(reply)
                return self._collector_seen or self._link.has_readers(self._keys.stream)
            self._link.retry_now()  # a connection a flaky link cut: one more, fresh
        return False

    def _shutdown(self) -> None:
        """Wait briefly for a live collector's commit, then make the rest durable in the spool;
        what the disk refuses waits for Redis until the same deadline, then is counted."""
        wait = self._commit_wait
        deadline = time.monotonic() + wait
        online = self._settings.mode == "online" and wait > 0
        if online and self._collector_expected():
            self._wait_for_commit(deadline)
        self._backlog.close()
        while online and self._outbox and time.monotonic() < deadline:
            if self._collector_expected():
                self._wait_for_commit(deadline)
            else:
                time.sleep(LAST_CHANCE_RETRY_SECONDS)
        self._backlog.give_up(self._unconfirmed)
        self._link.close()

    def _unconfirmed(self, held: Held) -> None:
        self.stats.unconfirmed_points += held.points
        log.error(
            "run %s: %d points of batch %d were sent to Redis but neither committed nor saved to the spool; "
            "they are stored unless Redis lost them",
            self._ident.run_id,
            held.points,
            held.seq,
        )

    def _wait_for_commit(self, deadline: float) -> None:
        """Replay and poll until everything is committed or the deadline; a link that fails is
        retried at once as long as each connection still moved something (a flaky link), and
        given up when one moved nothing (Redis is gone)."""
        notices: CommitNotices | None = None
        try:
            while (self._outbox or self._segments) and time.monotonic() < deadline:
                before = self._progress()
                reply = self._link.connect(wait=True)
                if reply is not None:
                    self._exchange(reply, catch_up=True)
                if self._link.state is not LinkState.UP:
                    if self._progress() == before:
                        return
                    self._link.retry_now()
                    continue
                if self._outbox.unsent() or self._segments.replay_pending:
                    continue
                # subscribed before the poll below: a commit after that poll wakes the wait
                notices = notices or self._link.commit_notices(self._keys.committed(self._ident.run_id))
                if notices is None:
                    time.sleep(CommitNotices.POLL_SECONDS)
                else:
                    notices.wait(max(0.0, min(NOTICE_WAIT_SECONDS, deadline - time.monotonic())))
                reply = self._round_trip([], "watermark")
                if reply is not None:
                    self._heard(reply)
        finally:
            if notices is not None:
                notices.close()

    def _progress(self) -> tuple[int, int, int]:
        stats = self.stats
        return stats.batches_sent, stats.batches_replayed, stats.committed_seq


def _in_round_trips(batches: list[Held], max_bytes: int) -> list[list[Held]]:
    """``batches`` in groups of at most ``max_bytes`` (at least one batch a group)."""
    groups: list[list[Held]] = []
    size = max_bytes
    for held in batches:
        if size + len(held.data) > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(held)
        size += len(held.data)
    return groups
