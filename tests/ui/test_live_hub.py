"""The dashboard's live hub over a real redis-server and collector: one subscription per run,
a Resync whenever points may have been missed, the committed points in order."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from ledger import CollectorThread, start_run, wait_until

from aquarium.agent.redis_keys import RedisKeys
from aquarium.collector.live import Points
from aquarium.ui.live import HubState, LiveHub, LiveItem, Resync


class Seen:
    def __init__(self) -> None:
        self.items: list[LiveItem] = []
        self.lock = threading.Lock()

    def __call__(self, item: LiveItem) -> None:
        with self.lock:
            self.items.append(item)

    def steps(self, key: str = "x") -> list[int]:
        with self.lock:
            return [s for i in self.items if isinstance(i, Points) and i.key == key for s in i.steps.tolist()]

    def resyncs(self) -> int:
        with self.lock:
            return sum(isinstance(i, Resync) for i in self.items)


@pytest.fixture
def hub(redis_url: str) -> Iterator[LiveHub]:
    live = LiveHub(redis_url, poll=0.05, reconnect_delay=0.05).start()
    wait_until(lambda: live.state is HubState.CONNECTED, "the hub connects")
    yield live
    live.stop()


def numsub(client: redis.Redis, channel: str) -> int:
    return int(dict(client.pubsub_numsub(channel))[channel.encode()])


def test_a_watcher_gets_a_resync_then_each_committed_point(
    hub: LiveHub, redis_url: str, data_dir: Path, client: redis.Redis
) -> None:
    seen = Seen()
    with CollectorThread(redis_url, data_dir):
        watch = hub.watch("hub-run", seen)
        channel = RedisKeys().live("hub-run")
        wait_until(lambda: seen.resyncs() == 1, "the first subscription asks for a resync")
        assert numsub(client, channel) == 1
        run = start_run(redis_url, data_dir / "agent", "hub-run")
        for step in range(5):
            run.log({"x": float(step)}, step=step)
        run.flush()
        wait_until(lambda: seen.resyncs() >= 2, "the collector left the first points out: resync")
        for step in range(5, 20):
            run.log({"x": float(step)}, step=step)
            run.flush()
        wait_until(lambda: seen.steps()[-1:] == [19], lambda: f"points up to step 19, got {seen.steps()}")
        live = seen.steps()
        assert live == sorted(set(live))  # in order, each once
        run.finish()
        second = Seen()
        other = hub.watch("hub-run", second)
        assert second.items == [Resync("hub-run")]  # joining a subscribed run: read the store now
        assert numsub(client, channel) == 1  # one subscription per run, however many watchers
        watch.close()
        other.close()
        wait_until(lambda: numsub(client, channel) == 0, "the last watcher gone, the hub unsubscribes")


def test_a_hub_without_redis_is_off_and_says_so() -> None:
    hub = LiveHub(None).start()
    assert hub.state is HubState.OFF
    seen = Seen()
    hub.watch("r", seen).close()
    assert seen.items == []
    hub.stop()


def test_a_lost_connection_resyncs_every_watcher(hub: LiveHub, client: redis.Redis) -> None:
    seen = Seen()
    hub.watch("lost-run", seen)
    wait_until(lambda: seen.resyncs() == 1, "subscribed")
    for c in client.client_list():
        if int(c.get("sub", 0)):
            client.client_kill_filter(_id=c["id"])
    wait_until(lambda: seen.resyncs() == 2, "after reconnecting the watcher is told to read the store")
    assert hub.state is HubState.CONNECTED
