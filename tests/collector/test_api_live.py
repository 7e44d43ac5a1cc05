"""`GET /api/runs/{id}/live` (Server-Sent Events) over a real redis-server and a real collector.

The app and a burst collector share one store: what is stored first comes as the backfill, what
the collector commits while the stream is open comes as events, and a client that leaves
unsubscribes.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import redis
from aiohttp import ClientResponse
from aiohttp.test_utils import TestClient, TestServer
from batches import make_batch

from aquarium.agent.redis_keys import RedisKeys
from aquarium.agent.wire import pack_batch
from aquarium.collector import Collector, CollectorSettings, Store
from aquarium.collector.api import ApiSettings, create_app

KEYS = RedisKeys()


def serve(store: Store, settings: ApiSettings, check: Callable[[TestClient[Any, Any]], Awaitable[None]]) -> None:
    async def main() -> None:
        async with TestClient(TestServer(create_app(store, settings))) as client:
            await asyncio.wait_for(check(client), 60)

    asyncio.run(main())


async def next_event(response: ClientResponse) -> tuple[str, Any]:
    """The next event (``event``, parsed data); a comment comes as ``(":", text)``."""
    event, data = "", ""
    while True:
        line = (await response.content.readline()).decode()
        assert line, "the stream ended"
        line = line.rstrip("\n")
        if line.startswith(":"):
            return ":", line[1:].strip()
        if line.startswith("event: "):
            event = line[7:]
        elif line.startswith("data: "):
            data = line[6:]
        elif line == "" and event:
            return event, json.loads(data)


def commit(redis_url: str, store: Store, *batches: Any) -> None:
    """XADD ``batches`` and drain them with a burst collector writing into ``store``."""
    client = redis.Redis.from_url(redis_url)
    for batch in batches:
        client.xadd(KEYS.stream, {"b": pack_batch(batch)})
    client.close()
    collector = Collector(CollectorSettings(redis_url=redis_url, data_dir=store.data_dir, ingest_spool=False), store)
    try:
        collector.run(burst=True)
    finally:
        collector.close()


def subscribers(redis_url: str, run_id: str) -> int:
    with redis.Redis.from_url(redis_url) as client:
        return int(dict(client.pubsub_numsub(KEYS.live(run_id)))[KEYS.live(run_id).encode()])


def test_backfill_then_each_commit_then_the_status(store: Store, redis_url: str) -> None:
    commit(redis_url, store, make_batch(0, [0, 1, 2], [1.0, math.nan, 3.0], run="s"))

    async def check(client: TestClient[Any, Any]) -> None:
        response = await client.get("/api/runs/s/live")
        assert response.status == 200 and response.headers["Content-Type"].startswith("text/event-stream")
        assert await next_event(response) == (
            "points",
            {
                "key": "loss",
                "rank": 0,
                "steps": [0, 1, 2],
                "values": [1.0, None, 3.0],
                "times": [1.7e9, 1.7e9 + 1e-3, 1.7e9 + 2e-3],
            },
        )
        later = make_batch(1, [3, 4], [4.0, math.inf], run="s", status=[("completed", 1.7e9 + 5)])
        await asyncio.to_thread(commit, redis_url, store, later)
        event, body = await next_event(response)
        assert (event, body["steps"], body["values"]) == ("points", [3, 4], [4.0, None])
        event, body = await next_event(response)
        assert event == "status" and body["run"] == "s" and body["status"] == [["completed", 1.7e9 + 5]]
        response.close()

    serve(store, ApiSettings(redis_url=redis_url), check)


def test_since_step_skips_what_the_client_has(store: Store, redis_url: str) -> None:
    commit(redis_url, store, make_batch(0, [0, 1, 2, 3], [1.0, 2.0, 3.0, 4.0], run="s"))

    async def check(client: TestClient[Any, Any]) -> None:
        response = await client.get("/api/runs/s/live", params={"since_step": "1"})
        event, body = await next_event(response)
        assert (event, body["steps"]) == ("points", [2, 3])
        response.close()

    serve(store, ApiSettings(redis_url=redis_url), check)


def test_a_client_that_leaves_unsubscribes(store: Store, redis_url: str) -> None:
    commit(redis_url, store, make_batch(0, [0], [1.0], run="s"))

    async def check(client: TestClient[Any, Any]) -> None:
        for _ in range(3):
            response = await client.get("/api/runs/s/live")
            await next_event(response)
            assert await asyncio.to_thread(subscribers, redis_url, "s") == 1
            response.close()
            while await asyncio.to_thread(subscribers, redis_url, "s"):
                await asyncio.sleep(0.05)  # bounded by the test's wait_for

    serve(store, ApiSettings(redis_url=redis_url), check)


def test_an_idle_stream_gets_keep_alive_comments(store: Store, redis_url: str) -> None:
    commit(redis_url, store, make_batch(0, [0], [1.0], run="s"))

    async def check(client: TestClient[Any, Any]) -> None:
        response = await client.get("/api/runs/s/live")
        assert (await next_event(response))[0] == "points"
        assert await next_event(response) == (":", "keep-alive")
        response.close()

    serve(store, ApiSettings(redis_url=redis_url, keepalive=0.1), check)


def test_an_unknown_run_is_404_and_no_redis_is_503(store: Store, redis_url: str, tmp_path: Path) -> None:
    commit(redis_url, store, make_batch(0, [0], [1.0], run="s"))

    async def with_redis(client: TestClient[Any, Any]) -> None:
        response = await client.get("/api/runs/nope/live")
        assert response.status == 404 and (await response.json())["code"] == "unknown_run"

    async def without(client: TestClient[Any, Any]) -> None:
        response = await client.get("/api/runs/s/live")
        assert response.status == 503 and (await response.json())["code"] == "live_unavailable"

    serve(store, ApiSettings(redis_url=redis_url), with_redis)
    serve(store, ApiSettings(), without)
