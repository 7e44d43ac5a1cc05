"""The Redis link of one shipper: connect, back off, one pipeline a round trip, restart detection.

The link is ``UP`` (a connection that answered), ``CONNECTING`` (a probe runs in the background),
``BACKING_OFF`` (the last attempt failed; the next one waits for the backoff) or ``DOWN`` (no
connection; the next call starts a probe). Probing in the background keeps a frozen Redis from
holding the shipper for a socket timeout per attempt while the training thread's queue grows.
Any success resets the backoff, so a flaky link retries quickly again after each good round trip.

A Redis server that comes back with a new ``run_id`` was restarted and may have lost what it
held. The link does not act on that: every reply says whether it found a restart, and the
shipper decides what to resend.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from .redis_keys import BATCH_FIELD

log = logging.getLogger("aquarium.agent.link")

REDIS_ERRORS = (redis.RedisError, OSError)


class LinkState(enum.Enum):
    DOWN = "down"
    BACKING_OFF = "backing off"
    CONNECTING = "connecting"
    UP = "up"


class _Probe:
    """One connection attempt in a daemon thread; an abandoned probe closes what it opened."""

    def __init__(self, connect: "Callable[[], redis.Redis]") -> None:
        self.client: redis.Redis | None = None
        self.run_id = ""
        self.error: Exception | None = None
        self._connect = connect
        self._lock = threading.Lock()
        self._abandoned = False
        self.thread = threading.Thread(target=self._run, name="aquarium-link-probe", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        client = None
        try:
            client = self._connect()
            run_id = str(client.info("server")["run_id"])
        except REDIS_ERRORS as e:
            self.error = e
            if client is not None:
                client.close()
            return
        with self._lock:
            if self._abandoned:
                client.close()
                return
            self.client, self.run_id = client, run_id

    def abandon(self) -> None:
        with self._lock:
            self._abandoned = True
            if self.client is not None:
                self.client.close()


@dataclass(frozen=True)
class Reply:
    """What one round trip found: committed seqs per watermark field, and a server restart."""

    watermarks: dict[str, int] = field(default_factory=dict)
    restarted: bool = False


class Link:
    def __init__(
        self,
        url: str,
        socket_timeout: float,
        run_id_check_seconds: float,
        on_failure: Callable[[str, Exception], None],
    ) -> None:
        self._url = url
        self._socket_timeout = socket_timeout
        self._check_every = run_id_check_seconds
        self._on_failure = on_failure
        self._client: redis.Redis | None = None
        self._probe: _Probe | None = None
        self._server_run_id: str | None = None
        self._checked_at = 0.0
        self._backoff = ExponentialWithJitterBackoff(base=0.05, cap=5.0)
        self.failures = 0  # consecutive: reset by any success
        self.last_failure = ""  # the cause of the last failure: "connect", or a round trip's
        self.refused = False  # the last round trip failed because the server refused the connection
        self._retry_at = 0.0

    @property
    def state(self) -> LinkState:
        if self._client is not None:
            return LinkState.UP
        if self._probe is not None:
            return LinkState.CONNECTING
        return LinkState.BACKING_OFF if time.monotonic() < self._retry_at else LinkState.DOWN

    def retry_now(self) -> None:
        """The last chance to ship (finish): try now, not when the backoff says."""
        self._retry_at = 0.0

    def connect(self, wait: bool = False) -> Reply | None:
        """The link if it is up; else start a probe (unless backing off) or collect its result.
        None while the link is not up; ``wait`` blocks for the probe (at finish)."""
        if self._client is not None:
            return Reply()
        probe = self._probe
        if probe is None:
            if self.state is LinkState.BACKING_OFF:
                return None
            probe = self._probe = _Probe(self._new_client)
        if wait:
            probe.thread.join()
        if probe.thread.is_alive():
            return None
        self._probe = None
        if probe.client is None:
            self._failed("connect", probe.error or ConnectionError("no connection"))
            return None
        self._client = probe.client
        restarted = self._server_changed(probe.run_id)
        self._succeeded()
        return Reply(restarted=restarted)

    def _new_client(self) -> redis.Redis:
        return redis.Redis.from_url(
            self._url,
            socket_timeout=self._socket_timeout,
            socket_connect_timeout=self._socket_timeout,
            retry=Retry(NoBackoff(), 0),
        )  # the shipper retries, with backoff, without blocking shipping

    def exchange(
        self, records: list[bytes], stream: str, watermark_key: str, fields: list[str], cause: str, check: bool = False
    ) -> Reply | None:
        """XADD ``records`` and read the watermark ``fields`` in one round trip (plus the server's
        run_id when a check is due or ``check``); None if it failed (the link is down then, and
        whether the records landed is unknown)."""
        if self._client is None:
            return None
        check = check or time.monotonic() - self._checked_at >= self._check_every
        pipe = self._client.pipeline(transaction=False)
        for record in records:
            pipe.xadd(stream, {BATCH_FIELD: record})
        if fields:
            pipe.hmget(watermark_key, fields)
        if check:
            pipe.info("server")
        try:
            replies = pipe.execute()
        except REDIS_ERRORS as e:
            self.refused = _refused(e)
            self._failed(cause, e)
            return None
        restarted = self._server_changed(replies[-1]["run_id"]) if check else False
        marks = replies[len(records)] if fields else []
        self._succeeded()
        return Reply({f: int(m) for f, m in zip(fields, marks) if m is not None}, restarted)

    def commit_notices(self, channel: str) -> "CommitNotices | None":
        """A subscription to ``channel`` on its own connection; None while the link is down."""
        if self._client is None:
            return None
        return CommitNotices(self._client, channel)

    def has_readers(self, stream: str) -> bool:
        """A collector created its consumer group on the stream."""
        if self._client is None:
            return False
        try:
            return bool(self._client.xinfo_groups(stream))
        except redis.ResponseError:  # no stream: nobody ever read it
            return False
        except REDIS_ERRORS as e:
            self._failed("watermark", e)
            return False

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
        self._client = None
        if self._probe is not None:
            self._probe.abandon()
            self._probe = None

    def _server_changed(self, run_id: str) -> bool:
        self._checked_at = time.monotonic()
        changed = self._server_run_id is not None and run_id != self._server_run_id
        self._server_run_id = run_id
        return changed

    def _succeeded(self) -> None:
        self.failures = 0
        self._retry_at = 0.0

    def _failed(self, cause: str, error: Exception) -> None:
        self.failures += 1
        self.last_failure = cause
        self._retry_at = time.monotonic() + self._backoff.compute(self.failures)
        self._on_failure(cause, error)
        self.close()


class CommitNotices:
    """One run's commit notices (the collector publishes one after each commit): ``wait`` returns
    when one arrives or after its timeout. Pub/sub refused (an ACL without the channel) or a
    lost connection makes it ``broken``, and ``wait`` a short sleep: the caller polls as before."""

    POLL_SECONDS = 0.01

    def __init__(self, client: redis.Redis, channel: str) -> None:
        self.broken = False
        self._pubsub = client.pubsub()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        try:
            self._pubsub.subscribe(channel)
        except REDIS_ERRORS as e:
            self._broke(e)

    def wait(self, timeout: float) -> bool:
        """True when a commit notice (or the subscription's confirmation) ended the wait."""
        if self.broken:
            time.sleep(min(timeout, self.POLL_SECONDS))
            return False
        deadline = time.monotonic() + timeout
        try:
            while (left := deadline - time.monotonic()) > 0:
                message = self._pubsub.get_message(timeout=left)
                if message is not None and message["type"] in ("message", "subscribe"):
                    return True  # a commit, or the subscription is live (so the next poll misses nothing)
        except REDIS_ERRORS as e:
            self._broke(e)
        return False

    def _broke(self, error: Exception) -> None:
        self.broken = True
        log.debug("commit notices unavailable (%s: %s); polling the watermark", type(error).__name__, error)

    def close(self) -> None:
        try:
            self._pubsub.close()
        except REDIS_ERRORS:
            pass


def _refused(error: BaseException) -> bool:
    """The (re)connection the round trip needed was refused: none of its commands reached the
    server (the client makes one attempt, no retries)."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
