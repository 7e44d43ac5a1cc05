"""Live fan-out over a real redis-server: the collector publishes each commit, ``follow`` yields
it, and a follower whose connection is killed backfills from the store to exactly what is stored."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
import redis
from ledger import CollectorThread, start_run, wait_until

from aquarium.agent.redis_keys import RedisKeys
from aquarium.collector import Api, Store
from aquarium.collector.live import Commit, Points, RunChange, decode, follow

KEYS = RedisKeys()


class Follower:
    """``follow`` in a thread, collecting what it yields."""

    def __init__(self, redis_url: str, run_id: str, data_dir: Path) -> None:
        self.points: list[tuple[str, int, int, float]] = []
        self.changes: list[RunChange] = []
        self.stop = threading.Event()
        self.api = Api(data_dir)
        self._thread = threading.Thread(target=self._run, args=(redis_url, run_id), daemon=True)
        self.error: BaseException | None = None

    def _run(self, redis_url: str, run_id: str) -> None:
        try:
            for item in follow(redis_url, run_id, source=self.api, stop=self.stop, poll=0.1, reconnect_delay=0.05):
                if isinstance(item, Points):
                    self.points += zip(
                        [item.key] * len(item), [item.rank] * len(item), item.steps.tolist(), item.values.tolist()
                    )
                else:
                    self.changes.append(item)
        except BaseException as e:
            self.error = e

    def seen(self, step: int) -> bool:
        return any(p[2] >= step for p in self.points[-10:])

    def __enter__(self) -> "Follower":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self._thread.join(30)
        self.api.close()
        assert not self._thread.is_alive(), "follow() did not stop"
        assert self.error is None, repr(self.error)


def stored(data_dir: Path, run_id: str, keys: list[str]) -> list[tuple[str, int, int, float]]:
    with Store(data_dir, read_only=True) as store:
        out = []
        for key in keys:
            for rank in store.ranks(run_id, key):
                s = store.read_series(run_id, key, rank)
                out += [(key, rank, st, v) for st, v in zip(s.steps.tolist(), s.values.tolist())]
        return out


def subscribers(client: redis.Redis, channel: str) -> int:
    return int(dict(client.pubsub_numsub(channel))[channel.encode()])


def kill_subscribers(client: redis.Redis) -> int:
    """CLIENT KILL every connection subscribed to a channel (RESP3 subscribers are not TYPE pubsub)."""
    ids = [c["id"] for c in client.client_list() if int(c.get("sub", 0)) or int(c.get("psub", 0))]
    for client_id in ids:
        client.client_kill_filter(_id=client_id)
    return len(ids)


@pytest.fixture
def collecting(redis_url: str, data_dir: Path) -> Iterator[CollectorThread]:
    with CollectorThread(redis_url, data_dir) as thread:
        yield thread


def test_a_commit_is_published_columnar_with_its_run_changes(
    redis_url: str, data_dir: Path, client: redis.Redis, collecting: CollectorThread
) -> None:
    pubsub = client.pubsub()
    pubsub.subscribe(KEYS.live("pub"), KEYS.live_runs, KEYS.committed("pub"))
    wait_until(lambda: subscribers(client, KEYS.live_runs), "subscribed")
    got: dict[str, list[bytes]] = {}

    def receive() -> list[Commit]:
        while (m := pubsub.get_message(timeout=0.05)) is not None:
            if m["type"] == "message":
                got.setdefault(m["channel"].decode(), []).append(m["data"])
        return [decode(d) for d in got.get(KEYS.live("pub"), [])]

    run = start_run(redis_url, data_dir / "agent", "pub")
    run.log_params({"lr": 0.1})
    run.log({"loss": -1.0}, step=0)
    # the collector has not heard of a subscriber yet: the first message leaves the points out
    first = wait_until(lambda: receive(), "the first commit is published")[0]
    assert not first.points and first.n == 1 and first.change and first.change["new"] is True
    for step in range(1, 6):
        run.log({"loss": float(step)}, step=step)
    run.finish()

    def everything() -> bool:
        commits = receive()
        return sum(len(p) for c in commits for p in c.points) == 5 and any(
            (c.change or {}).get("status", [[""]])[-1][0] == "completed" for c in commits
        )

    wait_until(everything, lambda: f"5 points and the completed status published, got {got}")
    commits = receive()
    assert [c.n for c in commits] == list(range(1, len(commits) + 1))
    assert not any(c.omitted for c in commits[1:])  # it heard of this subscriber
    steps = [s for c in commits for p in c.points for s in p.steps.tolist()]
    assert steps == [1, 2, 3, 4, 5]
    assert all(p.times.dtype.str == "<f8" and len(p.times) == len(p) for c in commits for p in c.points)
    assert "lr" in first.change["params"]
    runs = [msgpack.unpackb(d) for d in got[KEYS.live_runs]]
    assert {r["run"] for r in runs} == {"pub"} and runs[0]["new"] is True
    assert got[KEYS.committed("pub")]
    assert collecting.collector.stats.publish_errors == 0
    pubsub.close()


def test_points_are_left_out_while_nobody_listens() -> None:
    from batches import make_batch

    from aquarium.collector.live import Publisher
    from aquarium.collector.store import IngestResult

    publisher = Publisher(KEYS, "c1")

    def publish(seq: int, receivers: int) -> Commit:
        result = IngestResult(fresh=[make_batch(seq, [seq], [1.0], run="r")])
        messages = publisher.messages(result)
        publisher.heard(messages, [receivers] * len(messages))
        return decode(dict(messages)[KEYS.live("r")])

    first, second, third = publish(0, receivers=1), publish(1, receivers=0), publish(2, receivers=0)
    assert first.omitted and not first.points  # no subscriber heard of yet
    assert not second.omitted and second.points[0].steps.tolist() == [1]  # the first reached one
    assert third.omitted  # the second reached nobody
    assert [c.n for c in (first, second, third)] == [1, 2, 3]


def test_a_refused_publish_is_counted_and_ingest_goes_on(redis_url: str, data_dir: Path, client: redis.Redis) -> None:
    client.acl_setuser(
        "nopub", enabled=True, passwords=["+pw"], keys=["*"], commands=["+@all", "-publish"], channels=["*"]
    )
    url = redis_url.replace("redis://", "redis://nopub:pw@")
    with CollectorThread(url, data_dir) as thread:
        run = start_run(redis_url, data_dir / "agent", "refused")
        for step in range(10):
            run.log({"x": float(step)}, step=step)
        run.finish()
        wait_until(lambda: thread.collector.stats.points == 10, "all points stored")
        assert thread.collector.stats.publish_errors > 0
        assert thread.collector.stats.published == 0
    client.acl_deluser("nopub")


def test_a_killed_subscriber_backfills_to_exactly_what_is_stored(
    redis_url: str, data_dir: Path, client: redis.Redis, collecting: CollectorThread
) -> None:
    run = start_run(redis_url, data_dir / "agent", "killed", world_size=2)
    other = start_run(redis_url, data_dir / "agent", "killed", rank=1, world_size=2)
    run.log({"x": 0.0}, step=0)
    with Follower(redis_url, "killed", data_dir) as follower:
        wait_until(lambda: subscribers(client, KEYS.live("killed")), "the follower subscribed")
        for step in range(1, 400):
            run.log({"x": float(step), "y": -float(step)}, step=step)
            other.log({"x": float(step) + 0.5}, step=step)
            if step in (100, 250):  # caught up and subscribed: then cut, and log on while it reconnects
                wait_until(lambda: follower.seen(step), f"the follower sees step {step}")
                wait_until(lambda: subscribers(client, KEYS.live("killed")), "the follower subscribed")
                assert kill_subscribers(client) >= 1
        run.finish()
        other.finish()
        want = sorted(stored(data_dir, "killed", ["x", "y"]))
        assert len(want) == 400 + 399 + 399
        wait_until(lambda: sorted(follower.points) == want, lambda: f"{len(follower.points)} of {len(want)} followed")
    counts = Counter((key, rank, step) for key, rank, step, _ in follower.points)
    assert max(counts.values()) == 1
    assert any(c.change.get("status") for c in follower.changes)
