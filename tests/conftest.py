"""Shared fixtures: a real redis-server for the session, flushed around every test."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from servers import FaultyRedis, redis_binary

from aquarium.agent import env, uploader
from aquarium.cli.redis_server import RedisServer

# MLflow's telemetry thread mutates os.environ while other threads read it (workers/mlflow_env.py)
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")

# Bare imports of the repository folders must fail: code imports them as aquarium.*.
for _name in ("agent", "collector", "workers", "ui", "cli"):
    sys.modules.setdefault(_name, None)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(data_dir=tmp_path_factory.mktemp("redis"), binary=redis_binary())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> Iterator[str]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    yield redis_server.url
    try:
        client.flushall()
    finally:
        client.close()


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[FaultyRedis]:
    """A private redis-server a test may kill, pause or restart."""
    server = FaultyRedis(data_dir=tmp_path / "redis", binary=redis_binary())
    server.start()
    yield server
    server.stop()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty data dir, also set as AQUARIUM_DATA_DIR so nothing lands in the repo."""
    path = tmp_path / "aquarium_data"
    monkeypatch.setenv("AQUARIUM_DATA_DIR", str(path))
    return path


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No test sees the launcher variables of the machine running it."""
    ours = ("AQUARIUM_RUN_ID", "AQUARIUM_RANK", "AQUARIUM_WORLD_SIZE", "AQUARIUM_REDIS_URL", "AQUARIUM_MODE")
    for name in (*ours, *(variable.name for variable in env.LAUNCHER)):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AQUARIUM_DATA_DIR", str(tmp_path / "aquarium_data"))
    monkeypatch.setenv("AQUARIUM_API_PORT", "0")  # `aquarium up` in a test: any free port, never 8054
    monkeypatch.delenv("AQUARIUM_API_TOKEN", raising=False)


@pytest.fixture
def client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the shared, flushed redis-server."""
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


@pytest.fixture(autouse=True)
def _no_run_outlives_its_test() -> Iterator[None]:
    """Finish runs a failed test left open, so no shipper thread outlives its test; then close
    the process's artifact uploader, so no upload (nor its retries, nor its lock file) reaches
    the next test."""
    yield
    from ledger import finish_started_runs

    finish_started_runs()
    assert uploader.close_shared(), "the artifact uploader's threads did not stop"
