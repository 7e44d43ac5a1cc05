"""Asking "is Redis there?" makes one connection: a port held by something else is reported at once."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from aquarium.cli import cli
from aquarium.cli.redis_probe import port_url, probe
from aquarium.cli.redis_server import RedisServer


class SilentListener:
    """A TCP port that accepts connections and never answers: not Redis."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(64)
        self.socket.setblocking(False)
        self.port: int = self.socket.getsockname()[1]

    def connections(self) -> int:
        """How many connections were made to it (the kernel queued them; count by accepting)."""
        count = 0
        while True:
            try:
                conn, _ = self.socket.accept()
            except BlockingIOError:
                return count
            conn.close()
            count += 1


@pytest.fixture
def not_redis() -> Iterator[SilentListener]:
    listener = SilentListener()
    yield listener
    listener.socket.close()


def test_probe_connects_once_to_a_port_that_is_not_redis(not_redis: SilentListener) -> None:
    why = probe(port_url(not_redis.port), timeout=0.2)
    assert why is not None and "Timeout" in why
    assert not_redis.connections() == 1  # redis-py's default retries made 11


def test_probe_of_a_real_redis_answers(redis_url: str) -> None:
    assert probe(redis_url) is None


def test_doctor_probes_a_port_that_is_not_redis_once(not_redis: SilentListener, data_dir) -> None:
    args = ["doctor", "--redis-url", port_url(not_redis.port), "--data-dir", str(data_dir)]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "1000"})
    assert result.exit_code == 1 and "cannot reach" in result.output
    assert not_redis.connections() == 1


def test_up_probes_a_busy_port_once(not_redis: SilentListener, data_dir) -> None:
    result = CliRunner().invoke(cli, ["up", "--port", str(not_redis.port), "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "already in use" in result.output
    assert not_redis.connections() == 1


def test_redis_server_readiness_uses_the_probe(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixtures' readiness loop polls with fail-fast clients (one connection per attempt)."""
    from aquarium.cli import redis_server

    made: list[float] = []
    real = redis_server.connect

    def counting(url: str, timeout: float = 1.0):  # type: ignore[no-untyped-def]
        made.append(timeout)
        return real(url, timeout)

    monkeypatch.setattr(redis_server, "connect", counting)
    from servers import redis_binary

    with RedisServer(data_dir=tmp_path, binary=redis_binary()) as server:
        assert probe(server.url) is None
    assert made and all(t <= 1.0 for t in made)
