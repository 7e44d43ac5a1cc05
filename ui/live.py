"""One live subscriber per dashboard process: Redis pub/sub fanned out to the open sessions.

The hub's thread holds one pub/sub connection, subscribed to ``<prefix>:live:runs`` and to the
live channel of every run an open session watches. A run's watchers get, in order, the
``Points`` and ``RunChange`` items of each commit (decoded by ``collector/live.py``), or a
``Resync`` when points may have been missed: on every (re)subscription, when a source's message
counter jumps, and when the collector left a commit's points out (it had heard of no subscriber).
A watcher keeps its own last step per series and on ``Resync`` reads the store past it, so what
it shows converges to what is stored, each step once (the contract of ``live.follow``).

Watchers are called on the hub's thread and must return at once: a dashboard session hands the
item to its Bokeh document with ``doc.add_next_tick_callback``.
"""

from __future__ import annotations

import enum
import itertools
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from aquarium.agent.redis_keys import RedisKeys
from aquarium.collector.live import Cursor, Points, RunChange, decode

__all__ = ["HubState", "LiveHub", "LiveItem", "Resync", "Watch"]

log = logging.getLogger("aquarium.ui.live")


@dataclass(frozen=True)
class Resync:
    """Points of ``run`` may have been missed: read the store past what is shown."""

    run: str


LiveItem = Points | RunChange | Resync
Listener = Callable[[LiveItem], None]
RunsListener = Callable[[str, dict[str, Any]], None]


class HubState(enum.Enum):
    OFF = "off"  # no Redis configured: nothing is live, views re-read the store instead
    CONNECTING = "connecting"
    CONNECTED = "connected"
    DISCONNECTED = "disconnected"  # lost; reconnecting
    STOPPED = "stopped"


class Watch:
    """A subscription a session holds; ``close()`` ends it (idempotent)."""

    def __init__(self, close: Callable[[], None]) -> None:
        self._close: Callable[[], None] | None = close

    def close(self) -> None:
        close = self._close
        self._close = None
        if close is not None:
            close()


class LiveHub:
    """The dashboard process's one Redis subscriber; ``watch(run, listener)`` from any thread."""

    def __init__(
        self, redis_url: str | None, prefix: str = "aquarium", poll: float = 0.2, reconnect_delay: float = 0.5
    ) -> None:
        self.redis_url = redis_url
        self.keys = RedisKeys(prefix)
        self.state = HubState.OFF if redis_url is None else HubState.CONNECTING
        self.error = ""  # why the last connection failed
        self._poll, self._reconnect_delay = poll, reconnect_delay
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._runs: dict[str, dict[int, Listener]] = {}
        self._lists: dict[int, RunsListener] = {}
        self._changes: queue.SimpleQueue[tuple[str, str]] = queue.SimpleQueue()  # ("sub" | "unsub", run)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- sessions ---------------------------------------------------------------------------------
    def watch(self, run_id: str, listener: Listener) -> Watch:
        """Call ``listener`` with ``run_id``'s live items (a ``Resync`` first, once subscribed)."""
        token = next(self._ids)
        with self._lock:
            listeners = self._runs.setdefault(run_id, {})
            first = not listeners
            listeners[token] = listener
        if first:
            self._changes.put(("sub", run_id))
        elif self.state is HubState.CONNECTED:
            listener(Resync(run_id))  # the channel is already subscribed: read what was missed

        def close() -> None:
            with self._lock:
                listeners = self._runs.get(run_id, {})
                listeners.pop(token, None)
                last = not listeners
                if last:
                    self._runs.pop(run_id, None)
            if last:
                self._changes.put(("unsub", run_id))

        return Watch(close)

    def watch_runs(self, listener: RunsListener) -> Watch:
        """Call ``listener(run_id, change)`` for every run-level change (new run, status, params...)."""
        token = next(self._ids)
        with self._lock:
            self._lists[token] = listener

        def close() -> None:
            with self._lock:
                self._lists.pop(token, None)

        return Watch(close)

    def watched(self) -> list[str]:
        with self._lock:
            return sorted(self._runs)

    # -- lifetime ---------------------------------------------------------------------------------
    def start(self) -> "LiveHub":
        if self.redis_url is not None and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aquarium-ui-live", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self.state = HubState.STOPPED

    # -- the thread -------------------------------------------------------------------------------
    def _run(self) -> None:
        assert self.redis_url is not None
        while not self._stop.is_set():
            connection = _connect(self.redis_url)
            pubsub = connection.pubsub()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
            cursors: dict[str, Cursor] = {}
            try:
                while not self._changes.empty():  # this connection subscribes to all watched runs below
                    self._changes.get_nowait()
                pubsub.subscribe(self.keys.live_runs, *(self.keys.live(run) for run in self.watched()))
                while not self._stop.is_set():
                    self._apply_changes(pubsub, cursors)
                    message = pubsub.get_message(timeout=self._poll)
                    if message is not None:
                        self._handle(message, cursors)
            except (redis.ConnectionError, redis.TimeoutError, OSError) as e:
                self.state, self.error = HubState.DISCONNECTED, f"{type(e).__name__}: {e}"
                log.info("live updates: lost Redis (%s); reconnecting", self.error)
                self._stop.wait(self._reconnect_delay)
            finally:
                pubsub.close()
                connection.close()

    def _apply_changes(self, pubsub: Any, cursors: dict[str, Cursor]) -> None:
        while not self._changes.empty():
            action, run = self._changes.get_nowait()
            with self._lock:
                wanted = run in self._runs
            if action == "sub" and wanted:
                pubsub.subscribe(self.keys.live(run))
            elif action == "unsub" and not wanted:
                pubsub.unsubscribe(self.keys.live(run))
                cursors.pop(run, None)

    def _handle(self, message: dict[str, Any], cursors: dict[str, Cursor]) -> None:
        channel = message["channel"].decode() if isinstance(message["channel"], bytes) else str(message["channel"])
        if message["type"] == "subscribe":
            if channel == self.keys.live_runs:
                self.state, self.error = HubState.CONNECTED, ""
            else:
                run = channel.removeprefix(self.keys.live(""))
                cursors[run] = Cursor(run)
                self._send(run, Resync(run))
            return
        if message["type"] != "message":
            return
        if channel == self.keys.live_runs:
            change = msgpack.unpackb(message["data"], raw=False)
            run = str(change.pop("run", ""))
            with self._lock:
                lists = list(self._lists.values())
            for listener in lists:
                _call(listener, run, change)
            return
        commit = decode(message["data"])
        cursor = cursors.setdefault(commit.run, Cursor(commit.run))
        if cursor.gap(commit) or commit.omitted:
            self._send(commit.run, Resync(commit.run))
        for points in commit.points:
            self._send(commit.run, points)
        if commit.change:
            self._send(commit.run, RunChange(commit.run, commit.change))

    def _send(self, run: str, item: LiveItem) -> None:
        with self._lock:
            listeners = list(self._runs.get(run, {}).values())
        for listener in listeners:
            _call(listener, item)


def _call(listener: Callable[..., None], *args: Any) -> None:
    """A listener that fails (its session went away) must not stop the others."""
    try:
        listener(*args)
    except Exception:
        log.exception("live listener failed")


def _connect(url: str) -> redis.Redis:
    """A client without redis-py's retries: a lost connection must surface, so watchers resync."""
    return redis.Redis.from_url(url, socket_connect_timeout=5.0, retry=Retry(NoBackoff(), 0))
