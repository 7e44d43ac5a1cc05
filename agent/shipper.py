"""The shipper thread: moves what the training thread queued to Redis, or to the disk spool.

The training thread only appends to two deques. Every ``flush_interval`` this thread cuts
batches, XADDs them in one pipeline and polls the collector's commit watermark. Batches stay in
memory until the watermark covers them (an XADD reply is not a durable ack); past the memory
bound they spill to the spool. While Redis is unreachable, slow or paused, new batches go to the
spool, which is replayed in seq order when Redis answers again. When Redis comes back as a new
server (its run_id changed: restarted, possibly empty), everything not yet committed is resent;
the collector's batch-id ledger absorbs the repeats. Failures here are logged once per cause and
counted; they never reach the training thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from . import batcher
from .errors import AquariumError
from .identity import Identity
from .redis_keys import BATCH_FIELD, RedisKeys
from .settings import AgentSettings
from .spool import SpoolHeader, SpoolWriter, read_spool, segment_path
from .wire import pack_batch

log = logging.getLogger("aquarium.agent.shipper")

SEGMENT_BYTES = 64 << 20
REPLAY_CHUNK_BYTES = 8 << 20
RUN_ID_CHECK_SECONDS = 1.0
SLICE_ENTRIES = 4096
IDLE_POLL_SECONDS = 1.0
REDIS_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


@dataclass
class ShipperStats:
    """Counters a user can read (``run.stats``) and that ``finish()`` reports."""

    points: int = 0
    batches: int = 0
    batches_sent: int = 0
    batches_spooled: int = 0
    batches_replayed: int = 0
    batches_resent: int = 0
    dropped_points: int = 0
    redis_errors: int = 0
    committed_seq: int = -1
    last_error: str = ""


@dataclass
class Segment:
    path: Path
    writer: SpoolWriter | None
    sent_offset: int
    header_end: int
    first_seq: int
    max_seq: int = -1
    size: int = 0

    @property
    def unsent(self) -> bool:
        return self.sent_offset < self.size


@dataclass
class FinishReport:
    """What finish() achieved: everything is either committed, in Redis, or in a spool file."""

    points: int
    batches: int
    committed_seq: int
    last_seq: int
    spooled_files: list[str] = field(default_factory=list)
    dropped_points: int = 0
    timed_out: bool = False


class Shipper:
    def __init__(self, ident: Identity, settings: AgentSettings, meta: dict[str, Any]) -> None:
        self.points = batcher.PointQueue()
        # entries logged from threads other than the run's own: appended whole (one atomic
        # deque append), moved into a queue only this thread writes
        self.other_threads: deque[tuple[int, float, tuple[str, ...], tuple[float, ...]]] = deque()
        self._side = batcher.PointQueue()
        self.events: deque[tuple[str, Any]] = deque()
        self.stats = ShipperStats()
        self._ident = ident
        self._settings = settings
        self._keys = RedisKeys(settings.prefix)
        self._wm_key = self._keys.watermarks(ident.run_id)
        self._wm_field = RedisKeys.watermark_field(ident.rank, ident.incarnation)
        self._meta: dict[str, Any] | None = meta
        self._seq = 0
        self._unconfirmed: OrderedDict[int, tuple[bytes, int]] = OrderedDict()  # seq -> (batch, points)
        self._unconfirmed_bytes = 0
        self._segments: list[Segment] = []
        self._client: redis.Redis | None = None
        self._server_run_id: str | None = None
        self._run_id_checked = 0.0
        self._backoff = ExponentialWithJitterBackoff(base=0.05, cap=5.0)
        self._failures = 0
        self._retry_at = 0.0
        self._collector_seen = False
        self._last_poll = 0.0
        self._logged_causes: set[str] = set()
        self._wake = threading.Event()
        self._closing = False
        self._commit_wait = 0.0  # set by close()
        self._flush_requests = 0
        self._flushed = threading.Condition()
        self._flushed_count = 0
        self._thread = threading.Thread(target=self._loop, name=f"aquarium-shipper-{ident.run_id}", daemon=True)

    # -- called from the training thread -------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def flush(self, timeout: float) -> bool:
        """Ship everything queued so far (to Redis or the spool); False if it took too long."""
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
        return True

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
            last_seq=self._seq - 1,
            spooled_files=[str(s.path) for s in self._segments],
            dropped_points=self.stats.dropped_points,
            timed_out=timed_out,
        )

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        interval = self._settings.flush_interval
        while True:
            self._wake.wait(interval)
            self._wake.clear()
            closing = self._closing
            with self._flushed:
                requested = self._flush_requests
            if closing:  # the last chance to ship: try Redis now, not when the backoff says
                self._retry_at = 0.0
            try:
                self._cycle()
                while self._replay_pending() and (closing or requested > self._flushed_count):
                    if not self._replay():
                        break
            except Exception as e:  # a bug here must never kill shipping silently
                self._note_error("shipper-bug", e)
            with self._flushed:
                self._flushed_count = requested
                self._flushed.notify_all()
            if closing:
                self._shutdown()
                return

    def _cycle(self) -> None:
        batches = self._cut()
        online = self._settings.mode == "online"
        if not online:
            for batch in batches:
                self._spool_raw(*batch)
            self._sync_spool()
            return
        polled = False
        if batches:
            if self._replay_pending() or not self._connected():
                for batch in batches:
                    self._spool_raw(*batch)
            else:
                polled = self._send(batches)
        if self._replay_pending() and self._connected():
            self._replay()
        self._sync_spool()
        if not polled and self._client is not None and self._watermark_due():
            self._poll_watermark()
        self._spill_over_bound()

    def _watermark_due(self) -> bool:
        """Poll only while something waits for the commit, and slowly until a collector answered:
        each poll is a round trip that costs the training process CPU."""
        now = time.monotonic()
        if now < self._retry_at or not (self._unconfirmed or self._segments):
            return False
        if not self._collector_seen and now - self._last_poll < IDLE_POLL_SECONDS:
            return False
        return True

    def _cut(self) -> list[tuple[int, bytes, int]]:
        """Drain the queues into packed batches: (seq, bytes, points).

        Entries are taken in slices, and the thread yields the GIL between slices, so the
        training thread never waits on more than one slice's work.
        """
        events: dict[str, Any] = {}
        for _ in range(len(self.events)):
            kind, payload = self.events.popleft()
            if kind == "status":
                events.setdefault("status", []).append(payload)
            else:
                events.setdefault(kind, {}).update(payload)
        if self._meta is not None:
            events["meta"], self._meta = self._meta, None
        packed: list[tuple[int, bytes, int]] = []
        others = self.other_threads
        self._side.append_entries(others.popleft() for _ in range(len(others)))
        side_columns = self._side.take(len(self._side))
        remaining = len(self.points)
        while remaining or events or side_columns:
            take = min(remaining, SLICE_ENTRIES)
            remaining -= take
            columns = batcher.merge_columns(self.points.take(take), side_columns)
            side_columns = {}
            for batch in batcher.cut(
                columns, events, self._ident.run_id, self._ident.rank, self._ident.incarnation, self._seq
            ):
                points = batch.point_count
                try:
                    data = pack_batch(batch)
                except AquariumError as e:  # the batcher's budget prevents this; counted if not
                    self.stats.dropped_points += points
                    self._note_error("pack", e)
                    continue
                packed.append((batch.id.seq, data, points))
                self._seq = batch.id.seq + 1
                self.stats.points += points
            events = {}
            if remaining:
                time.sleep(0)
        self.stats.batches += len(packed)
        return packed

    # -- Redis ---------------------------------------------------------------------------------
    def _connected(self) -> bool:
        if self._client is not None:
            return True
        if time.monotonic() < self._retry_at:
            return False
        try:
            client = redis.Redis.from_url(
                self._settings.redis_url,
                socket_timeout=self._settings.socket_timeout,
                socket_connect_timeout=self._settings.socket_timeout,
                retry=Retry(NoBackoff(), 0),
            )  # this loop retries, with backoff, without blocking shipping
            self._check_server(client, force=True)
        except REDIS_ERRORS as e:
            self._failed("connect", e)
            return False
        self._client = client
        return True

    def _check_server(self, client: redis.Redis, force: bool = False) -> None:
        """A new Redis run_id means a restarted (maybe empty) server: resend what is unconfirmed."""
        now = time.monotonic()
        if not force and now - self._run_id_checked < RUN_ID_CHECK_SECONDS:
            return
        self._run_id_checked = now
        run_id = client.info("server")["run_id"]
        if self._server_run_id is not None and run_id != self._server_run_id:
            log.warning(
                "run %s: Redis restarted (run_id changed); resending %d uncommitted batches",
                self._ident.run_id,
                len(self._unconfirmed) + sum(1 for s in self._segments),
            )
            self._resend_all()
        self._server_run_id = run_id

    def _send(self, batches: list[tuple[int, bytes, int]]) -> bool:
        """XADD the batches and read the watermark in the same round trip; True if it was read."""
        assert self._client is not None
        pipe = self._client.pipeline(transaction=False)
        for _, data, _ in batches:
            pipe.xadd(self._keys.stream, {BATCH_FIELD: data})
        pipe.hget(self._wm_key, self._wm_field)
        try:
            watermark = pipe.execute()[-1]
            self._check_server(self._client)
        except REDIS_ERRORS as e:
            self._failed("xadd", e)
            # Unknown whether they landed: spool them after what is still unconfirmed.
            self._move_unconfirmed_to_spool()
            for seq, data, points in batches:
                self._spool_raw(seq, data, points)
            return False
        for seq, data, points in batches:
            self._unconfirmed[seq] = (data, points)
            self._unconfirmed_bytes += len(data)
        self.stats.batches_sent += len(batches)
        self._failures = 0
        self._watermark_read(watermark)
        return True

    def _poll_watermark(self) -> None:
        """Also checks the server's run_id: an idle or finishing run must notice a restart too."""
        assert self._client is not None
        self._last_poll = time.monotonic()
        try:
            self._check_server(self._client)
            raw = self._client.hget(self._wm_key, self._wm_field)
        except REDIS_ERRORS as e:
            self._failed("watermark", e)
            self._move_unconfirmed_to_spool()
            return
        self._watermark_read(raw)

    def _watermark_read(self, raw: bytes | str | None) -> None:
        if raw is not None:
            self._collector_seen = True
            self._confirm(int(raw))

    def _confirm(self, seq: int) -> None:
        """Forget what the watermark covers; a segment replayed after its batches were already
        committed (a resend the collector had) is dropped although the watermark did not move."""
        seq = self.stats.committed_seq = max(seq, self.stats.committed_seq)
        while self._unconfirmed and next(iter(self._unconfirmed)) <= seq:
            _, (data, _) = self._unconfirmed.popitem(last=False)
            self._unconfirmed_bytes -= len(data)
        for segment in [s for s in self._segments if s.max_seq <= seq and not s.unsent]:
            self._drop_segment(segment)

    def _failed(self, cause: str, error: Exception) -> None:
        self.stats.redis_errors += 1
        self._failures += 1
        self._retry_at = time.monotonic() + self._backoff.compute(self._failures)
        self._note_error(cause, error)
        if self._client is not None:
            self._client.close()
        self._client = None

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

    # -- the spool -----------------------------------------------------------------------------
    def _spool_raw(self, seq: int, data: bytes, points: int, sent: bool = False) -> None:
        try:
            segment = self._open_segment(seq)
            assert segment.writer is not None
            all_sent = not segment.unsent
            segment.size = segment.writer.append(data)
        except OSError as e:
            self.stats.dropped_points += points
            log.error("run %s: could not spool batch %d (%s); %d points dropped", self._ident.run_id, seq, e, points)
            return
        segment.max_seq = max(segment.max_seq, seq)
        if not sent:
            self.stats.batches_spooled += 1
        elif all_sent:  # else it is replayed with the unsent records before it: a harmless repeat
            segment.sent_offset = segment.size

    def _open_segment(self, seq: int) -> Segment:
        if self._segments:
            last = self._segments[-1]
            if last.writer is not None and last.size < SEGMENT_BYTES:
                return last
            if last.writer is not None:
                last.writer.close()
                last.writer = None
        ident = self._ident
        path = segment_path(
            self._settings.spool_dir, ident.run_id, ident.rank, ident.incarnation, self._next_segment_number()
        )
        writer = SpoolWriter(path, SpoolHeader(ident.run_id, ident.rank, ident.incarnation, time.time()))
        segment = Segment(path, writer, writer.size, writer.header_end, seq, size=writer.size)
        self._segments.append(segment)
        return segment

    def _next_segment_number(self) -> int:
        if not self._segments:
            return 0
        return int(self._segments[-1].path.stem.rsplit("-", 1)[1]) + 1

    def _sync_spool(self) -> None:
        for segment in self._segments:
            if segment.writer is not None:
                try:
                    segment.writer.flush(fsync=True)
                except OSError as e:
                    self._note_error("spool-fsync", e)

    def _replay_pending(self) -> bool:
        return self._settings.mode == "online" and any(s.unsent for s in self._segments)

    def _replay(self) -> bool:
        """Send the oldest unsent spooled batches; False when Redis failed."""
        if not self._connected():
            return False
        assert self._client is not None
        segment = next(s for s in self._segments if s.unsent)
        if segment.writer is not None:
            segment.writer.flush(fsync=False)
        try:
            chunk = read_spool(segment.path, start=segment.sent_offset, max_bytes=REPLAY_CHUNK_BYTES)
        except FileNotFoundError:
            # A closed segment was ingested (and deleted) by a collector: it reached the store.
            log.info("run %s: spool %s was ingested by a collector", self._ident.run_id, segment.path)
            self._drop_segment(segment)
            return True
        pipe = self._client.pipeline(transaction=False)
        for record in chunk.records:
            pipe.xadd(self._keys.stream, {BATCH_FIELD: record})
        try:
            pipe.execute()
        except REDIS_ERRORS as e:
            self._failed("replay", e)
            return False
        segment.sent_offset = chunk.end_offset if chunk.records else segment.size
        self.stats.batches_replayed += len(chunk.records)
        try:
            # After moving the offset: a restart found here resets it, and everything is resent.
            self._check_server(self._client)
        except REDIS_ERRORS as e:
            self._failed("replay", e)
            return False
        return True

    def _move_unconfirmed_to_spool(self, resend: bool = True) -> None:
        """Keep unconfirmed batches on disk, in seq order after what the spool already holds."""
        for seq, (data, points) in list(self._unconfirmed.items()):
            self._spool_raw(seq, data, points, sent=not resend)
            self.stats.batches_resent += resend
        self._unconfirmed.clear()
        self._unconfirmed_bytes = 0

    def _resend_all(self) -> None:
        self._move_unconfirmed_to_spool()
        for segment in self._segments:
            segment.sent_offset = segment.header_end

    def _spill_over_bound(self) -> None:
        while self._unconfirmed and self._unconfirmed_bytes > self._settings.max_memory_bytes:
            seq, (data, points) = self._unconfirmed.popitem(last=False)
            self._unconfirmed_bytes -= len(data)
            self._spool_raw(seq, data, points, sent=True)

    def _drop_segment(self, segment: Segment) -> None:
        if segment.writer is not None:
            segment.writer.close()
        try:
            segment.path.unlink()
        except FileNotFoundError:
            pass
        self._segments.remove(segment)

    def _collector_expected(self) -> bool:
        """A collector committed for this run, or created its consumer group on the stream.

        A run shorter than one flush interval never saw a watermark; the group tells it that a
        collector is there to wait for (bounded by ``commit_wait``). Checks the server first, so
        batches a restarted Redis lost are resent before the wait.
        """
        if self._client is None:
            return self._collector_seen
        try:
            self._check_server(self._client, force=True)  # a restart not noticed yet: resend now
            return self._collector_seen or bool(self._client.xinfo_groups(self._keys.stream))
        except redis.ResponseError:  # no stream: nobody ever read it
            return False
        except REDIS_ERRORS as e:
            self._failed("watermark", e)
            return False

    def _shutdown(self) -> None:
        """Wait briefly for a live collector's commit, then make the rest durable in the spool."""
        wait = self._commit_wait
        if self._settings.mode == "online" and wait > 0 and self._collector_expected():
            deadline = time.monotonic() + wait
            while (self._unconfirmed or self._segments) and time.monotonic() < deadline:
                if self._replay_pending():
                    if not self._replay():
                        break
                elif self._client is None:
                    break
                time.sleep(0.01)
                if self._client is not None:
                    self._poll_watermark()
        self._move_unconfirmed_to_spool(resend=False)
        for segment in self._segments:
            if segment.writer is not None:
                try:
                    segment.writer.close()
                except OSError as e:
                    self._note_error("spool-close", e)
                segment.writer = None
        if self._client is not None:
            self._client.close()
