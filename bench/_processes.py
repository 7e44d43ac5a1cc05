"""The server processes the benchmarks and the soak run around the agent: redis-server children
(that a run may kill, pause and restart) and `aquarium collector` commands.

Only public interfaces: ``aquarium.cli.redis_server.RedisServer``, the ``aquarium collector``
command and ``aquarium.collector.Collector`` for the final drain. Standard library at the top:
workers import this module too.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from _common import REDIS_BINARY

AQUARIUM = str(Path(sys.executable).with_name("aquarium"))


def redis_server(data_dir: Path, port: int | None = None, aof: str = "") -> Any:
    """A private redis-server (not started); ``aof`` is an appendfsync policy ("always",
    "everysec") that turns the append-only file on, so a kill -9 keeps (most of) the data."""
    from aquarium.cli.redis_server import RedisServer

    extra = ["--appendonly", "yes", "--appendfsync", aof] if aof else []
    return RedisServer(port=port, binary=REDIS_BINARY, data_dir=data_dir, extra_args=extra)


def pause(process: subprocess.Popen[Any] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGSTOP)


def resume(process: subprocess.Popen[Any] | None) -> None:
    if process is not None and process.poll() is None:
        process.send_signal(signal.SIGCONT)


def kill(process: subprocess.Popen[Any] | None) -> None:
    """SIGKILL and reap: what a crash looks like."""
    if process is not None and process.poll() is None:
        process.kill()
        process.wait()


def start_collector(
    redis_url: str, data_dir: Path, consumer: str = "", claim_idle: float = 10.0, log_path: Path | None = None
) -> subprocess.Popen[bytes]:
    """`aquarium collector` in the background, its output in ``log_path`` (else discarded)."""
    argv = [AQUARIUM, "collector", "--redis-url", redis_url, "--data-dir", str(data_dir)]
    argv += ["--claim-idle", str(claim_idle)] + (["--consumer", consumer] if consumer else [])
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONHASHSEED": "0"})
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]


def stop_collector(process: subprocess.Popen[Any] | None, timeout: float = 15.0) -> None:
    """SIGTERM (it commits and acks the read it holds), SIGKILL if it does not stop in time."""
    if process is None or process.poll() is not None:
        return
    resume(process)
    process.terminate()
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        kill(process)


def drain(redis_url: str, data_dir: Path, consumer: str = "final-drain", claim_idle: float = 0.0) -> Any:
    """Drain what the stream and the spool under ``data_dir`` still hold into the store, with a
    burst Collector that also takes over what dead collectors left pending; returns its stats."""
    from aquarium.collector import Collector, CollectorSettings

    collector = Collector(
        CollectorSettings(redis_url=redis_url, data_dir=data_dir, consumer=consumer, claim_idle=claim_idle)
    )
    try:
        return collector.run(burst=True)
    finally:
        collector.close()


def stored_points(data_dir: Path, run_id: str) -> int:
    """Points of a run in the store (its series summaries), 0 if the store never saw it."""
    from aquarium.agent import RunNotFoundError
    from aquarium.collector import Store

    with Store(data_dir) as store:
        try:
            run = store.get_run(run_id)
        except RunNotFoundError:
            return 0
        return int(sum(m["count"] for m in run["metrics"].values()))
