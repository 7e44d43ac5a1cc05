"""A collector serving the API advertises where agents upload artifacts: ``HGET aquarium:api url``,
renewed while it runs, withdrawn when it stops; the agent's ACL user may read it, not write it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from ledger import collector_settings, wait_until
from servers import redis_binary

from aquarium.agent.redis_keys import RedisKeys
from aquarium.cli.api import start_beside
from aquarium.cli.redis_server import RedisServer
from aquarium.collector import Collector, CollectorSettings, Store
from aquarium.collector.advertise import ApiAdvertisement, api_key, reachable_host
from aquarium.collector.api import ApiServer, ApiSettings, create_app

KEY = api_key(RedisKeys())
ACL_FILE = Path(__file__).parents[2] / "deploy" / "redis" / "users.acl"


def test_a_collector_serving_the_api_advertises_it_and_withdraws_it_at_stop(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    collector = Collector(collector_settings(redis_url, data_dir))
    server = start_beside(collector, "127.0.0.1", 0)
    try:
        assert client.hget(KEY, "url") == f"http://127.0.0.1:{server.port}".encode()
        assert 0 < client.ttl(KEY) <= 30
    finally:
        server.stop()
        collector.close()
    assert not client.exists(KEY)


def test_the_advertisement_is_renewed_while_the_collector_runs(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    collector = Collector(collector_settings(redis_url, data_dir, maintenance_interval=0.02))
    collector.advertise_api("http://10.1.2.3:8054")
    collector.api_advertisement = ApiAdvertisement(collector.redis, collector.keys, "http://10.1.2.3:8054", ttl=0.3)
    thread = threading.Thread(target=collector.run, daemon=True)
    thread.start()
    try:
        client.delete(KEY)  # expired, or flushed: the next renewal writes it again
        wait_until(lambda: client.hget(KEY, "url") == b"http://10.1.2.3:8054", "the advertisement renewed")
    finally:
        collector.stop()
        thread.join(10)
        collector.close()


def test_a_stopping_collector_leaves_a_siblings_advertisement(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    collector = Collector(collector_settings(redis_url, data_dir))
    collector.advertise_api("http://10.0.0.1:8054")
    client.hset(KEY, "url", "http://10.0.0.2:8054")  # a sibling advertised since
    collector.close()
    assert client.hget(KEY, "url") == b"http://10.0.0.2:8054"


def test_a_wildcard_bind_is_advertised_at_an_address_other_machines_can_reach(store: Store) -> None:
    host = reachable_host("0.0.0.0")
    assert host not in ("", "0.0.0.0", "::")
    assert reachable_host("10.0.0.5") == "10.0.0.5"
    settings = ApiSettings(host="0.0.0.0", port=0, token="t")
    with ApiServer(create_app(store, settings), settings) as server:
        assert server.advertised_url == f"http://{host}:{server.port}"


def test_the_advertised_url_can_be_set(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQUARIUM_API_PUBLIC_URL", "https://tracker.example.org")
    settings = ApiSettings.from_env(host="0.0.0.0", port=0, token="t")
    with ApiServer(create_app(store, settings), settings) as server:
        assert server.advertised_url == "https://tracker.example.org"


@pytest.fixture(scope="module")
def acl_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(
        data_dir=tmp_path_factory.mktemp("acl-redis"), binary=redis_binary(), extra_args=["--aclfile", str(ACL_FILE)]
    )
    server.start()
    yield server
    server.stop()


def test_the_collector_user_advertises_and_the_agent_user_reads_but_cannot_write(
    acl_redis: RedisServer, tmp_path: Path
) -> None:
    base = f"127.0.0.1:{acl_redis.port}/0"
    settings = CollectorSettings(redis_url=f"redis://aquarium-collector:change-me-collector@{base}", data_dir=tmp_path)
    collector = Collector(settings)
    server = start_beside(collector, "127.0.0.1", 0)
    agent = redis.Redis.from_url(f"redis://aquarium-agent:change-me-agent@{base}")
    try:
        assert agent.hget(KEY, "url") == server.url.encode()
        with pytest.raises(redis.exceptions.NoPermissionError):
            agent.hset(KEY, "url", "http://attacker:1")
    finally:
        agent.close()
        server.stop()
        collector.close()
    admin = redis.Redis(port=acl_redis.port, username="aquarium-admin", password="change-me-admin")
    assert not admin.exists(KEY)  # the collector user may withdraw it too
    admin.close()
