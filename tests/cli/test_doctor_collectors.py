"""`aquarium doctor` counts a running collector as active even while the stream is empty."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner

from aquarium.agent.redis_keys import RedisKeys
from aquarium.cli import cli
from aquarium.cli.activity import ACTIVE_IDLE_MS
from aquarium.collector import Collector, CollectorSettings


@pytest.fixture
def idle_collector(redis_url: str, tmp_path: Path) -> Iterator[Collector]:
    """A collector blocking in XREADGROUP on an empty stream, in a thread."""
    collector = Collector(CollectorSettings(redis_url=redis_url, data_dir=tmp_path / "store", consumer="idle-one"))
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    yield collector
    collector.stop()
    thread.join(timeout=10)
    collector.close()


def wait_until(condition, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition never held"
        time.sleep(0.1)


# COLUMNS=1000: a details cell folded at the terminal's width would split the phrases checked


def test_doctor_counts_a_collector_waiting_on_an_empty_stream(
    idle_collector: Collector, client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    keys = RedisKeys()

    def group_created() -> bool:
        try:
            return bool(client.xinfo_groups(keys.stream))
        except redis.ResponseError:  # the collector has not created its group yet
            return False

    wait_until(group_created)  # on Redis < 7.2 its consumer is listed only once a read delivers
    # Past the idle threshold: Redis < 7.2 counts idle from the last read that delivered entries,
    # so a collector that only waits on an empty stream looked dead to the old check by now.
    time.sleep(ACTIVE_IDLE_MS / 1000 + 0.5)
    out = CliRunner().invoke(
        cli, ["doctor", "--redis-url", redis_url, "--data-dir", str(data_dir)], env={"COLUMNS": "1000"}
    )
    assert out.exit_code == 0, out.output
    assert "1 active collector" in out.output and "0 active" not in out.output


def test_doctor_counts_no_collector_when_none_runs(client: redis.Redis, redis_url: str, data_dir: Path) -> None:
    keys = RedisKeys()
    client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    client.xadd(keys.stream, {"b": b"x"})
    client.xreadgroup(keys.group, "gone", {keys.stream: ">"}, count=1)  # a consumer that then went away
    client.ping()  # this connection's last command is no longer a collector's
    out = CliRunner().invoke(
        cli, ["doctor", "--redis-url", redis_url, "--data-dir", str(data_dir)], env={"COLUMNS": "1000"}
    )
    assert "0 active collectors" in out.output and "1 consumer in the group" in out.output
