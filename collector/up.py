"""Process supervision for `aquarium up` and `aquarium collector`.

`aquarium up` owns a redis-server child (unless a Redis URL is given) and runs the collector in
the foreground, in the main thread. SIGINT, SIGTERM and SIGHUP become a stop request: the
collector finishes the read it is storing (commit, then XACK), returns, and only then is the
Redis child stopped, so nothing read is left unacknowledged and no child outlives us. The Redis
child runs in its own session, so a terminal's Ctrl-C reaches us and not it; a second Ctrl-C
interrupts at once. If the Redis child dies on its own, the collector is stopped too and `up`
fails instead of retrying a server that will never come back.
"""

from __future__ import annotations

import gc
import logging
import signal
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType, TracebackType
from typing import Callable

import redis

from aquarium.agent.errors import AquariumError

from .consumer import Collector, CollectorSettings, CollectorStats
from .redis_server import RedisServer, free_port

log = logging.getLogger("aquarium.collector.up")

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class PortBusyError(AquariumError):
    """Raised by `aquarium up` when the port for its Redis is already taken."""

    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__(
            f"port {port} on 127.0.0.1 is already in use by something that is not Redis; choose another "
            f"--port, or --port 0 for any free one")


class RedisDiedError(AquariumError):
    """Raised by `aquarium up` when its Redis child exits while the collector is running."""

    def __init__(self, returncode: int | None, output: str) -> None:
        self.returncode, self.output = returncode, output
        super().__init__(f"the Redis child exited with code {returncode}; collector stopped. Its log:\n{output}")


class StopSignals:
    """While entered, SIGINT/SIGTERM/SIGHUP request a stop instead of killing the process.

    Callbacks registered with ``on_stop`` run (in the main thread, from the signal handler) the
    first time; a second SIGINT raises KeyboardInterrupt for the impatient. Previous handlers
    are restored on exit.
    """

    def __init__(self) -> None:
        self.requested = threading.Event()
        self.signal_name = ""
        self._callbacks: list[Callable[[], None]] = []
        self._previous: dict[int, object] = {}

    def on_stop(self, callback: Callable[[], None]) -> None:
        self._callbacks.append(callback)
        if self.requested.is_set():
            callback()

    def request(self, reason: str = "") -> None:
        if self.requested.is_set():
            return
        self.signal_name = self.signal_name or reason
        self.requested.set()
        for callback in self._callbacks:
            callback()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name
        log.info("%s received: stopping after the current read", self.signal_name)
        self.request()

    def __enter__(self) -> "StopSignals":
        for sig in STOP_SIGNALS:
            self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for sig, handler in self._previous.items():
            # None: the previous handler was not installed from Python; the default is the best guess
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)  # type: ignore[arg-type]


def _answers_redis(port: int) -> bool:
    client = redis.Redis(port=port, socket_timeout=1.0, socket_connect_timeout=1.0)
    try:
        return bool(client.ping())
    except (redis.RedisError, OSError):
        return False
    finally:
        client.close()


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something listens on (host, port): binding as Redis would (SO_REUSEADDR) fails."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def tune_gc_for_a_collector_process() -> None:
    """The collector process builds many short-lived containers per read; with the default
    thresholds full collections (60-80 ms) run every few reads. Freeze what startup built and
    collect the young generation less often (+19% small-batch ingest in bench/ingest.py)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)


def run_collector(collector: Collector, stop: StopSignals) -> CollectorStats:
    """Run ``collector`` in the foreground until a stop signal; returns its stats."""
    tune_gc_for_a_collector_process()
    stop.on_stop(collector.stop)
    if stop.requested.is_set():
        return collector.stats
    return collector.run()


@dataclass
class UpResult:
    redis_url: str
    stats: CollectorStats
    stopped_by: str


def up(data_dir: Path, port: int, redis_url: str | None, prefix: str, stop: StopSignals,
       say: Callable[[str], None]) -> UpResult:
    """Start Redis (a child on ``port`` unless ``redis_url`` is given), then the collector.

    Returns once a stop signal ended the collector; the Redis child is stopped in every case.
    Raises PortBusyError, RedisServerError (no binary, or it did not start) or RedisDiedError.
    """
    server: RedisServer | None = None
    watcher: threading.Thread | None = None
    died: list[int | None] = []
    try:
        if redis_url is None and port != 0 and port_in_use(port):
            if not _answers_redis(port):
                raise PortBusyError(port)
            redis_url = f"redis://127.0.0.1:{port}/0"  # e.g. Debian's redis-server service: use it
            say(f"a Redis already answers on 127.0.0.1:{port}: using it")
        if redis_url is None:
            if port == 0:
                port = free_port()
            server = RedisServer(port, data_dir=data_dir / "redis")
            say(f"starting {server.binary} on 127.0.0.1:{port} (no persistence; log in {server.log_path})")
            server.start()
            redis_url = server.url
            watcher = threading.Thread(target=_watch, args=(server, stop, died), name="aquarium-up-watch",
                                       daemon=True)
            watcher.start()
        settings = CollectorSettings.from_env(redis_url=redis_url, data_dir=data_dir, prefix=prefix)
        collector = Collector(settings)
        try:
            say(f"Redis is ready. Point training scripts at it:\n\n    export AQUARIUM_REDIS_URL={redis_url}\n")
            collector.ingest_spool()
            if collector.stats.spool_batches:
                say(f"ingested {collector.stats.spool_batches} spooled batches from {data_dir / 'spool'}")
            say(f"collector {collector.consumer} storing into {data_dir.resolve()}; Ctrl-C stops")
            stats = run_collector(collector, stop)
        finally:
            collector.close()
        if died:
            assert server is not None
            raise RedisDiedError(died[0], server.log())
        return UpResult(redis_url, stats, stop.signal_name)
    finally:
        stop.request("shutdown")  # ends the watcher
        if watcher is not None:
            watcher.join()
        if server is not None:
            server.stop()


def _watch(server: RedisServer, stop: StopSignals, died: list[int | None]) -> None:
    """Stop the collector if the Redis child exits by itself."""
    process = server.process
    assert process is not None
    while not stop.requested.wait(0.5):
        if process.poll() is not None:
            log.error("the Redis child exited with code %s", process.returncode)
            died.append(process.returncode)
            stop.request("redis-exit")
            return
