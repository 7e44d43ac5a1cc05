"""The collector loop: Redis stream -> one SQLite transaction per read -> XACK -> watermarks.

Delivery is at-least-once from Redis; the store's batch-id ledger makes it exactly-once in
effect. Entries are acknowledged only after their transaction commits. A collector that died
leaves its entries pending; a sibling reclaims them once they have been idle ``claim_idle``
seconds (see redelivery: an entry delivered ``max_deliveries`` times is a poison pill). A batch
whose decoding or storing raises anything goes to the dead-letter stream with the reason, the
rest of its read is stored, and the collector keeps going; only a store that cannot write at all
holds ingest back (and dead-letters nothing). Maintenance trims the stream below what every
group has acknowledged and removes consumers that died with nothing pending (see upkeep).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import redis
from redis.backoff import ExponentialWithJitterBackoff

from aquarium.agent.redis_keys import BATCH_FIELD, DEAD_REASON_FIELD, DEAD_SOURCE_FIELD, RedisKeys
from aquarium.agent.wire import Batch, unpack_batch

from . import redelivery, upkeep
from .advertise import ApiAdvertisement
from .live import Publisher
from .redelivery import Entry
from .registration import StoreRegistration
from .settings import CollectorSettings
from .store import IngestResult, Store, conflict_reason
from .store.failures import StoreUnavailableError, ingest_isolating, reason_of

log = logging.getLogger("aquarium.collector.consumer")

WATERMARK_TTL_SECONDS = 7 * 24 * 3600
DEAD_LETTER_MAXLEN = 100_000  # diagnostics, not data: the oldest dead letters go first
# Redis unreachable, or refusing writes for now (OOM under noeviction, a replica after failover,
# an ACL without a command): retried with backoff, never the batch's fault.
REDIS_ERRORS = (
    redis.ConnectionError,
    redis.TimeoutError,
    OSError,
    redis.exceptions.OutOfMemoryError,
    redis.exceptions.ReadOnlyError,
    redis.exceptions.NoPermissionError,
)


@dataclass
class CollectorStats:
    reads: int = 0
    entries: int = 0
    stored: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    points: int = 0
    claimed: int = 0
    poison: int = 0
    trimmed: int = 0
    consumers_removed: int = 0
    compacted: int = 0
    spool_batches: int = 0
    redis_errors: int = 0
    published: int = 0
    publish_errors: int = 0
    last_error: str = ""
    gaps: dict[tuple[str, int, str], int] = field(default_factory=dict)


class Collector:
    def __init__(self, settings: CollectorSettings | None = None, store: Store | None = None) -> None:
        self.settings = settings or CollectorSettings.from_env()
        self.keys = RedisKeys(self.settings.prefix)
        self.consumer = self.settings.consumer_name
        self._owns_store = store is None
        self.store = store or Store(self.settings.data_dir, read_only=False)
        self.redis = redis.Redis.from_url(self.settings.redis_url, socket_timeout=5.0, socket_connect_timeout=2.0)
        self.registration = StoreRegistration(
            self.redis, self.keys, self.store.store_id, self.store.data_dir, self.settings.store_claim_ttl
        )
        self.stats = CollectorStats()
        self._stop = threading.Event()
        self._backoff = ExponentialWithJitterBackoff(base=0.1, cap=5.0)
        self._failures = 0
        self._group_ready = False
        self._own_pending_done = False
        self._next_maintenance = 0.0
        self._unfinished: list[Entry] = []  # read, not stored: the store could not write
        self.publisher = Publisher(self.keys, self.consumer)
        self._publish_error = ""  # the last one logged: each cause is logged once
        self.api_advertisement: ApiAdvertisement | None = None  # set while this process serves the API

    # -- running -------------------------------------------------------------------------------
    def run(self, burst: bool = False) -> CollectorStats:
        """Consume until stop() (or, with ``burst``, until nothing is left), then return stats."""
        if self.settings.ingest_spool:
            self.ingest_spool()
        while not self._stop.is_set():
            try:
                handled = self.step(block=not burst)
                if burst and handled == 0 and self._claim() == 0:
                    self._maintenance(force=True)
                    break
                self._failures = 0
            except REDIS_ERRORS as e:
                self._redis_failed(e)
                if burst and self._failures > 50:
                    raise
            except StoreUnavailableError as e:
                if burst:
                    raise
                self._store_failed(e)
            self._maintenance()
        return self.stats

    def stop(self) -> None:
        self._stop.set()

    def advertise_api(self, url: str) -> None:
        """Tell agents (through Redis) that this collector's API at ``url`` takes artifact uploads;
        renewed in maintenance, withdrawn at close. A Redis failure now is retried there."""
        self.api_advertisement = ApiAdvertisement(self.redis, self.keys, url)
        try:
            self.api_advertisement.publish(force=True)
        except REDIS_ERRORS as e:
            log.warning("could not advertise the API in Redis yet (%s); retrying", e)

    def close(self) -> None:
        try:
            if self.api_advertisement is not None:
                self.api_advertisement.withdraw()
            self.registration.release()
        except redis.RedisError:
            pass  # unreachable: the registration expires by itself
        self.redis.close()
        if self._owns_store:
            self.store.close()

    def step(self, block: bool = True) -> int:
        """One read -> commit -> ack cycle; returns how many stream entries it handled."""
        if self._unfinished:
            entries, self._unfinished = self._unfinished, []
            return self.handle(entries)
        self._ensure_group()
        if not self._own_pending_done:
            # entries this consumer name read before a crash (or a lost XACK) and never acknowledged
            handled = self._take_over(self.consumer, idle_ms=0)
            self._own_pending_done = True
            if handled:
                return handled
        return self.handle(self._read(">", block))

    def _read(self, start_id: str, block: bool) -> list[tuple[bytes, dict[bytes, bytes]]]:
        def read() -> Any:
            return self.redis.xreadgroup(
                self.keys.group,
                self.consumer,
                {self.keys.stream: start_id},
                count=self.settings.read_count,
                block=self.settings.block_ms if block else None,
            )

        try:
            reply = read()
        except redis.ResponseError as e:
            if not _group_lost(e):
                raise
            # Read again at once from the new group: a burst run must not stop before reading
            # what agents resent to a Redis that came back empty.
            self._recreate_group(e)
            reply = read()
        self.stats.reads += 1
        return reply[0][1] if reply else []

    def handle(self, entries: list[Entry]) -> int:
        """Decode, store in one transaction, dead-letter the bad ones, then XACK everything.

        Whatever decoding or storing one batch raises sends that batch to the dead letters; the
        rest of the read is stored. Only a store that cannot write at all stops this (raising
        StoreUnavailableError, with the entries kept for the next step).
        """
        if not entries:
            return 0
        good: list[tuple[bytes, bytes, Batch]] = []
        dead: list[tuple[bytes, bytes, str]] = []
        for entry_id, fields in entries:
            data = fields.get(BATCH_FIELD.encode()) if fields else None
            if data is None:
                dead.append((entry_id, b"", f"stream entry has no {BATCH_FIELD!r} field"))
                continue
            try:
                good.append((entry_id, data, unpack_batch(data)))
            except Exception as e:  # WireFormatError, or a decoder bug: either way this entry's fault
                dead.append((entry_id, data, reason_of(e)))
        try:
            result = self._store(good, dead)
        except StoreUnavailableError:
            self._unfinished = entries
            raise
        conflicted = {id(batch) for batch in result.conflicts}
        dead.extend((eid, data, conflict_reason(b)) for eid, data, b in good if id(b) in conflicted)
        self._acknowledge(entries, dead, result)
        return len(entries)

    def _acknowledge(self, entries: list[Entry], dead: list[tuple[bytes, bytes, str]], result: IngestResult) -> None:
        """Dead letters first, in their own round trip: a pipeline runs every command even when one
        fails, so an XACK sent with a refused XADD would drop an entry that is nowhere. If this
        raises, the entries stay pending with us and are handled again (the ledger skips what is stored)."""
        if dead:
            self._dead_letter(dead)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xack(self.keys.stream, self.keys.group, *[eid for eid, _ in entries])
        self._queue_watermarks(pipe, result)
        self._execute_publishing(pipe, result)
        self.stats.entries += len(entries)
        self.stats.stored += result.stored
        self.stats.duplicates += result.duplicates
        self.stats.points += result.points
        self.stats.dead_letters += len(dead)
        self.stats.gaps.update(result.gaps)

    def _dead_letter(self, dead: list[tuple[bytes, bytes, str]]) -> None:
        pipe = self.redis.pipeline(transaction=False)
        for entry_id, data, reason in dead:
            log.warning("dead letter %s: %s", entry_id.decode(), reason)
            pipe.xadd(
                self.keys.dead_letter,
                {BATCH_FIELD: data, DEAD_REASON_FIELD: reason, DEAD_SOURCE_FIELD: entry_id},
                maxlen=DEAD_LETTER_MAXLEN,
                approximate=True,
            )
        pipe.execute()

    def _store(self, good: list[tuple[bytes, bytes, Batch]], dead: list[tuple[bytes, bytes, str]]) -> IngestResult:
        """All good batches in one transaction; if that fails, each alone, dead-lettering the ones that fail."""
        result, refused = ingest_isolating(self.store.ingest, [batch for _, _, batch in good])
        why = {id(batch): reason_of(error) for batch, error in refused}
        dead.extend((eid, data, f"store rejected the batch: {why[id(b)]}") for eid, data, b in good if id(b) in why)
        return result

    def _queue_watermarks(self, pipe: Any, result: IngestResult) -> None:
        for (run, rank, incarnation), seq in result.watermarks.items():
            key = self.keys.watermarks(run)
            pipe.hset(key, RedisKeys.watermark_field(rank, incarnation), seq)
            pipe.expire(key, WATERMARK_TTL_SECONDS)

    def _execute_publishing(self, pipe: Any, result: IngestResult) -> None:
        """Run ``pipe`` with the live messages of ``result`` after its commands, in the same
        round trip: after the commit (subscribers backfill from the store, which must hold what
        they are told about) and after XACK and the watermarks (an agent woken by the commit
        notice reads the new watermark). A refused PUBLISH is counted and logged once per cause,
        never the commit's failure; the commands before it raise as before."""
        commands = len(pipe)
        try:
            messages = self.publisher.messages(result) + self.publisher.notices(result)
        except Exception as e:  # a bug in building messages must not hold ingest back
            messages = []
            self._publish_failed(e)
        for channel, payload in messages:
            pipe.publish(channel, payload)
        replies = pipe.execute(raise_on_error=False)
        for reply in replies[:commands]:
            if isinstance(reply, Exception):
                raise reply
        self.publisher.heard(messages, replies[commands:])
        failed = [reply for reply in replies[commands:] if isinstance(reply, Exception)]
        self.stats.published += len(messages) - len(failed)
        if failed:
            self._publish_failed(failed[0], len(failed))

    def _publish_failed(self, error: Exception, count: int = 1) -> None:
        self.stats.publish_errors += count
        if self._publish_error != reason_of(error):
            self._publish_error = reason_of(error)
            log.warning("live updates not published (%s); ingest goes on", self._publish_error)

    # -- upkeep --------------------------------------------------------------------------------
    def _recreate_group(self, error: redis.ResponseError) -> None:
        log.warning(
            "consumer group %s is gone (%s); Redis restarted empty or the stream was deleted: recreating it",
            self.keys.group,
            error,
        )
        self._group_ready = False
        self._ensure_group()

    def _ensure_group(self) -> None:
        if self._group_ready:
            return
        self.registration.claim()  # before reading anything: a store that is not ours must not get it
        try:
            self.redis.xgroup_create(self.keys.stream, self.keys.group, id="0", mkstream=True)
            log.info("created consumer group %s on %s", self.keys.group, self.keys.stream)
        except redis.ResponseError as e:
            if "BUSYGROUP" not in str(e):
                raise
        self._group_ready = True

    def _claim(self) -> int:
        """Take over entries other collectors read but never acknowledged (they died)."""
        self._ensure_group()
        try:
            return self._take_over(None, idle_ms=int(self.settings.claim_idle * 1000))
        except redis.ResponseError as e:
            if not _group_lost(e):
                raise
            self._recreate_group(e)  # a new group has nothing pending to claim
            return 0

    def _take_over(self, owner: str | None, idle_ms: int) -> int:
        """Claim and handle pending entries of ``owner`` (None: every other consumer), see redelivery."""
        handled, after = 0, None
        while True:
            page = redelivery.pending_page(
                self.redis, self.keys, after=after, count=self.settings.read_count, consumer=owner, idle_ms=idle_ms
            )
            if not page:
                return handled
            after = page[-1].entry_id
            theirs = [p for p in page if owner is not None or p.consumer != self.consumer.encode()]
            plan = redelivery.plan(theirs, self.settings.max_deliveries)
            handled += self._dead_letter_poison(plan.poison, idle_ms)
            pieces = [plan.together] + [[entry_id] for entry_id in plan.alone]
            for piece in pieces:
                entries = redelivery.claim(self.redis, self.keys, self.consumer, idle_ms, piece)
                if owner is None and entries:
                    log.info("claimed %d pending entries idle for %.0fs+", len(entries), idle_ms / 1000)
                    self.stats.claimed += len(entries)
                handled += self.handle(entries)
            if len(page) < self.settings.read_count:
                return handled

    def _dead_letter_poison(self, poison: list[redelivery.PendingEntry], idle_ms: int) -> int:
        deliveries = {p.entry_id: p.deliveries for p in poison}
        entries = redelivery.claim(self.redis, self.keys, self.consumer, idle_ms, list(deliveries))
        dead = [
            (
                entry_id,
                fields.get(BATCH_FIELD.encode(), b""),
                f"delivered {deliveries[entry_id]} times and never acknowledged: "
                "handling it may crash the collector (poison pill)",
            )
            for entry_id, fields in entries
        ]
        if entries:
            self.stats.poison += len(entries)
            self._acknowledge(entries, dead, IngestResult())
        return len(entries)

    def _trim(self) -> None:
        self.stats.trimmed += upkeep.trim(self.redis, self.keys)

    def _maintenance(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now < self._next_maintenance:
            return
        self._next_maintenance = now + self.settings.maintenance_interval
        try:
            self.registration.claim()  # renew
            if self.api_advertisement is not None:
                self.api_advertisement.publish()  # when due
            if not force and not self._unfinished:  # while the store is down, claim nothing more
                self._claim()
            self._trim()
            idle_ms = int(self.settings.consumer_idle * 1000)
            self.stats.consumers_removed += len(
                upkeep.remove_idle_consumers(self.redis, self.keys, self.consumer, idle_ms)
            )
        except REDIS_ERRORS as e:
            self._redis_failed(e)
        except StoreUnavailableError as e:
            self._store_failed(e)
        try:  # housekeeping that fails is retried next time; it never stops ingest
            self.stats.compacted += self.store.compact()
            if self.settings.ingest_spool and not force:
                self.ingest_spool(include_live=False)
        except Exception as e:
            if self.stats.last_error != reason_of(e):
                log.warning("maintenance failed (%s); retrying later", reason_of(e))
            self.stats.last_error = reason_of(e)

    def ingest_spool(self, include_live: bool = True) -> None:
        """Ingest spool files under the data dir (offline runs, what agents spooled at finish)."""
        report = self.store.ingest_spool(include_live=include_live)
        if report.batches:
            log.info(
                "ingested %d spooled batches (%d new, %d points) from %d files",
                report.batches,
                report.stored,
                report.points,
                report.files,
            )
            self.stats.spool_batches += report.batches
            try:
                pipe = self.redis.pipeline(transaction=False)
                self._queue_watermarks(pipe, report.result)
                self._execute_publishing(pipe, report.result)
            except REDIS_ERRORS as e:
                self._redis_failed(e)

    def _store_failed(self, error: StoreUnavailableError) -> None:
        self._failures += 1
        if self.stats.last_error != str(error):
            log.error("%s; retrying the same %d entries", error, len(self._unfinished))
        self.stats.last_error = str(error)
        self._stop.wait(self._backoff.compute(self._failures))

    def _redis_failed(self, error: Exception) -> None:
        self.stats.redis_errors += 1
        self._failures += 1
        self._group_ready = False
        self._own_pending_done = False  # a failure between commit and XACK left entries with us
        if self.stats.last_error != str(error):
            log.warning("Redis error (%s: %s); retrying", type(error).__name__, error)
        self.stats.last_error = str(error)
        self._stop.wait(self._backoff.compute(self._failures))


def _group_lost(error: redis.ResponseError) -> bool:
    """NOGROUP: the group is gone; UNBLOCKED: the stream was deleted under a blocked read."""
    return str(error).startswith(("NOGROUP", "UNBLOCKED"))
