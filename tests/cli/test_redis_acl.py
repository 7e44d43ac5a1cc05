"""deploy/redis/users.acl on a real redis-server: each user can do its job and nothing it must not."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from servers import redis_binary

import aquarium.agent as aq
from aquarium.agent.redis_keys import RedisKeys
from aquarium.cli import cli
from aquarium.cli.redis_server import RedisServer
from aquarium.collector import Collector, CollectorSettings, Store

ACL_FILE = Path(__file__).parents[2] / "deploy" / "redis" / "users.acl"
PASSWORDS = {"agent": "change-me-agent", "collector": "change-me-collector", "ui": "change-me-ui"}


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        data_dir=tmp_path_factory.mktemp("acl-redis"), binary=redis_binary(), extra_args=["--aclfile", str(ACL_FILE)]
    )
    server.start()
    yield server
    server.stop()


def url(server: RedisServer, role: str) -> str:
    return f"redis://aquarium-{role}:{PASSWORDS[role]}@127.0.0.1:{server.port}/0"


@pytest.fixture
def collector(acl_redis: RedisServer, tmp_path: Path) -> Iterator[Collector]:
    """A collector connected as aquarium-collector, running in a thread."""
    admin = redis.Redis(port=acl_redis.port, username="aquarium-admin", password="change-me-admin")
    admin.flushall()
    settings = CollectorSettings(redis_url=url(acl_redis, "collector"), data_dir=tmp_path / "store", consumer="acl-c")
    worker = Collector(settings)
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    # an agent that finds no consumer group does not wait for a commit: let the collector make it
    deadline = time.monotonic() + 30
    while not admin.exists(RedisKeys().stream) or not admin.xinfo_groups(RedisKeys().stream):
        assert thread.is_alive() and time.monotonic() < deadline, "the collector never created its group"
        time.sleep(0.05)
    admin.close()
    yield worker
    worker.stop()
    thread.join(timeout=10)
    worker.close()


def test_an_agent_user_logs_a_run_end_to_end(
    acl_redis: RedisServer, collector: Collector, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # generous bounds on a loaded machine: finish() returns as soon as the watermark covers the run
    monkeypatch.setenv("AQUARIUM_COMMIT_WAIT", "60")
    monkeypatch.setenv("AQUARIUM_FINISH_TIMEOUT", "60")
    run = aq.init(experiment="acl", run_id="acl-run", redis_url=url(acl_redis, "agent"), data_dir=tmp_path / "agent")
    for step in range(200):
        run.log({"loss": float(step)}, step=step)
    report = run.finish()
    # committed: the agent read its watermark back, and nothing went to the spool
    assert report.committed_seq == report.last_seq, (report, run.stats)
    assert not report.spooled_files and report.dropped_points == 0, (report, run.stats)
    assert "NOPERM" not in run.stats.last_error, run.stats
    with Store(tmp_path / "store") as store:
        assert store.get_run("acl-run")["metrics"]["loss"]["count"] == 200
    assert collector.stats.dead_letters == 0 and "NOPERM" not in collector.stats.last_error, collector.stats


@pytest.mark.parametrize(
    "command",
    [
        ["XREADGROUP", "GROUP", "aquarium:collectors", "x", "STREAMS", "aquarium:batches", ">"],
        ["XRANGE", "aquarium:batches", "-", "+"],
        ["XACK", "aquarium:batches", "aquarium:collectors", "0-1"],
        ["XTRIM", "aquarium:batches", "MAXLEN", "0"],
        ["DEL", "aquarium:batches"],
        ["HSET", "aquarium:wm:{run}", "0/inc", "99"],
        ["XADD", "aquarium:dead", "*", "b", "x"],
        ["FLUSHALL"],
        ["CONFIG", "SET", "maxmemory-policy", "allkeys-lru"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_an_agent_user_cannot_read_acknowledge_or_delete(acl_redis: RedisServer, command: list[str]) -> None:
    agent = redis.Redis.from_url(url(acl_redis, "agent"))
    try:
        with pytest.raises(redis.exceptions.NoPermissionError):
            agent.execute_command(*command)
    finally:
        agent.close()


def test_no_user_means_no_access(acl_redis: RedisServer) -> None:
    anonymous = redis.Redis(port=acl_redis.port)
    try:
        with pytest.raises(redis.AuthenticationError):
            anonymous.xadd(RedisKeys().stream, {"b": b"forged"})
    finally:
        anonymous.close()


@pytest.mark.parametrize("role", ["agent", "collector", "ui"])
def test_doctor_reports_the_user_and_that_it_may_do_its_job(acl_redis: RedisServer, role: str, data_dir: Path) -> None:
    result = CliRunner().invoke(
        cli, ["doctor", "--redis-url", url(acl_redis, role), "--data-dir", str(data_dir)], env={"COLUMNS": "1000"}
    )
    assert result.exit_code == 0, result.output
    assert f"aquarium-{role}, as {role}: may run every command the role needs" in result.output


def test_doctor_says_what_a_user_may_not_do_for_another_role(acl_redis: RedisServer, data_dir: Path) -> None:
    args = ["doctor", "--redis-url", url(acl_redis, "agent"), "--role", "collector", "--data-dir", str(data_dir)]
    result = CliRunner().invoke(cli, args, env={"COLUMNS": "1000"})
    assert result.exit_code == 1
    assert "aquarium-agent, as collector: may not run" in result.output and "XREADGROUP" in result.output


def test_up_on_a_port_of_a_redis_that_needs_a_password_says_how_to_use_it(
    acl_redis: RedisServer, data_dir: Path
) -> None:
    result = CliRunner().invoke(cli, ["up", "--port", str(acl_redis.port), "--data-dir", str(data_dir)])
    assert result.exit_code == 1 and "requires a user and password" in result.output
    assert "--redis-url redis://USER:PASSWORD@" in result.output and "Traceback" not in result.output
