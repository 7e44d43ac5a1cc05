"""The API's handlers: runs, one run, its metric keys, a series window, health, the counters.

Every store call runs in a worker thread (``asyncio.to_thread``): SQLite reads block, and the
event loop must keep answering while a large series is read. The store gives each thread its
own reader connection.
"""

from __future__ import annotations

import asyncio
import json
import math
from typing import Any

import numpy as np
import redis
from aiohttp import web

from aquarium.agent.redis_keys import RedisKeys
from aquarium.collector.client import Api
from aquarium.collector.columnar import CONTENT_TYPE as COLUMNS_TYPE
from aquarium.collector.columnar import encode_window, window_to_json
from aquarium.collector.live import Cursor, Points, Source, decode

from . import prometheus
from .errors import BadRequestError, TooLargeError, error_response
from .keys import COUNTERS, LIVE_REDIS, LIVE_STREAMS, SETTINGS, STORE
from .openapi import document

routes = web.RouteTableDef()


def json_response(body: Any, status: int = 200) -> web.Response:
    text = json.dumps(json_safe(body), separators=(",", ":"), allow_nan=False)
    return web.Response(text=text, status=status, content_type="application/json")


def json_safe(value: Any) -> Any:
    """JSON has no NaN or infinity: they become null (the columnar form keeps them exact)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    return value


def int_param(request: web.Request, name: str, default: int | None = None, minimum: int | None = None) -> int | None:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequestError(name, f"{raw[:40]!r} is not an integer") from None
    if minimum is not None and value < minimum:
        raise BadRequestError(name, f"must be at least {minimum}, not {value}")
    return value


@routes.get("/api/health")
async def health(request: web.Request) -> web.Response:
    store = request.app[STORE]
    store_id = await asyncio.to_thread(lambda: store.store_id)
    return json_response({"status": "ok", "store_id": store_id, "read_only": store.read_only})


@routes.get("/api/runs")
async def runs(request: web.Request) -> web.Response:
    """Runs matching ``filter`` (the query language), sorted, one page, with the total."""
    settings = request.app[SETTINGS]
    limit = int_param(request, "limit", 100, minimum=1)
    assert limit is not None
    if limit > settings.max_page:
        raise TooLargeError(f"limit: at most {settings.max_page:,} runs a page (page with offset)")
    offset = int_param(request, "offset", 0, minimum=0) or 0
    filter_, sort = request.query.get("filter") or None, request.query.get("sort") or None
    store = request.app[STORE]
    page = await asyncio.to_thread(store.search_runs, filter_, sort, limit, offset)
    return json_response({"runs": page.runs, "total": page.total, "limit": limit, "offset": offset})


@routes.get("/api/runs/{run_id}")
async def run(request: web.Request) -> web.Response:
    store = request.app[STORE]
    return json_response(await asyncio.to_thread(store.get_run, request.match_info["run_id"]))


@routes.get("/api/runs/{run_id}/keys")
async def keys(request: web.Request) -> web.Response:
    store, run_id = request.app[STORE], request.match_info["run_id"]
    return json_response({"run": run_id, "keys": await asyncio.to_thread(store.metric_keys, run_id)})


@routes.get("/api/runs/{run_id}/series/{key:.+}")
async def series(request: web.Request) -> web.Response:
    """One metric of one run: a rank or an aggregate across ranks, a step range, downsampled."""
    settings = request.app[SETTINGS]
    query = request.query
    samples = int_param(request, "samples", None, minimum=1)
    if samples is not None and samples > settings.max_samples:
        raise TooLargeError(f"samples: at most {settings.max_samples:,}")
    rank = int_param(request, "rank", None, minimum=0)
    agg = query.get("agg") or None
    start, end = int_param(request, "start"), int_param(request, "end")
    store = request.app[STORE]
    run_id, key = request.match_info["run_id"], request.match_info["key"]
    times = query.get("times", "").lower() not in ("0", "false", "no")  # a curve needs no log times: a third less
    window = await asyncio.to_thread(
        store.read_window, run_id, key, rank=rank, agg=agg, samples=samples, start=start, end=end, times=times
    )
    if samples is None and window.total > settings.max_raw_points:
        raise TooLargeError(
            f"{window.total:,} points: ask for samples=N or a step range (start, end); "
            f"at most {settings.max_raw_points:,} raw points an answer"
        )
    if query.get("format") == "columns" or COLUMNS_TYPE in request.headers.get("Accept", ""):
        return web.Response(body=await asyncio.to_thread(encode_window, window), content_type=COLUMNS_TYPE)
    return json_response(window_to_json(window))


EVENT_POINTS = 10_000  # at most this many points an SSE event (a backfill is cut into pieces)


@routes.get("/api/runs/{run_id}/live")
async def live(request: web.Request) -> web.StreamResponse:
    """Server-Sent Events: what the store holds of the run (after ``since_step``), then each new
    commit as ``event: points`` (one series each) and run changes as ``event: status``; a
    comment every ``keepalive`` seconds. 503 without a Redis to subscribe to, 404 for an unknown run."""
    app = request.app
    if LIVE_REDIS not in app:
        return error_response(503, "live_unavailable", "live updates need Redis: this API was started without one")
    settings, store = app[SETTINGS], app[STORE]
    run_id = request.match_info["run_id"]
    since = int_param(request, "since_step")
    await asyncio.to_thread(store.get_run, run_id)  # RunNotFoundError: 404
    pubsub = app[LIVE_REDIS].pubsub()
    stop = asyncio.Event()
    app[LIVE_STREAMS].add(stop)
    try:
        try:
            await pubsub.subscribe(RedisKeys(settings.prefix).live(run_id))
            while await pubsub.get_message(timeout=5.0) is None:  # subscribed before the backfill reads
                pass
        except (redis.RedisError, OSError) as e:
            return error_response(503, "live_unavailable", f"Redis: {type(e).__name__}: {e}")
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        try:
            await _stream(request, response, pubsub, Cursor(run_id, since), Api(store), stop)
        except (ConnectionResetError, redis.RedisError, OSError):
            pass  # the client left, or Redis did: the client's EventSource reconnects (and backfills)
        return response
    finally:
        app[LIVE_STREAMS].discard(stop)
        await pubsub.aclose()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated


async def _stream(
    request: web.Request,
    response: web.StreamResponse,
    pubsub: Any,
    cursor: Cursor,
    source: Source,
    stop: asyncio.Event,
) -> None:
    keepalive = request.app[SETTINGS].keepalive
    loop = asyncio.get_running_loop()
    await _send_points(response, await asyncio.to_thread(cursor.backfill, source))
    quiet_since = loop.time()
    while not stop.is_set():
        transport = request.transport
        if transport is None or transport.is_closing():
            return
        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=min(1.0, keepalive))
        if message is None or message["type"] != "message":
            if loop.time() - quiet_since >= keepalive:
                await response.write(b": keep-alive\n\n")
                quiet_since = loop.time()
            continue
        commit = decode(message["data"])
        if cursor.gap(commit) or commit.omitted:  # messages were lost: the store holds them
            await _send_points(response, await asyncio.to_thread(cursor.backfill, source))
        await _send_points(response, cursor.take(commit.points))
        if commit.change:
            await _send(response, "status", {"run": commit.run, **commit.change})
        quiet_since = loop.time()


async def _send_points(response: web.StreamResponse, points: list[Points]) -> None:
    for p in points:
        for a in range(0, len(p), EVENT_POINTS):
            part = slice(a, a + EVENT_POINTS)
            body = {
                "key": p.key,
                "rank": p.rank,
                "steps": p.steps[part].tolist(),
                "values": _finite(p.values[part]),
                "times": _finite(p.times[part]),
            }
            await _send(response, "points", body)


def _finite(values: np.ndarray) -> list[float | None]:
    """JSON has no NaN or infinity: they become null."""
    out: list[float | None] = values.tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in values.tolist()]
    return out


async def _send(response: web.StreamResponse, event: str, body: dict[str, Any]) -> None:
    data = json.dumps(body, separators=(",", ":"), allow_nan=False)  # values are finite or None
    await response.write(f"event: {event}\ndata: {data}\n\n".encode())


@routes.get("/api/openapi.json")
async def openapi(request: web.Request) -> web.Response:
    return json_response(document())


@routes.get("/metrics")
async def metrics(request: web.Request) -> web.Response:
    sources = request.app[COUNTERS]

    def collect() -> str:
        return prometheus.render(sample for source in sources for sample in source())

    response = web.Response(text=await asyncio.to_thread(collect))
    response.headers["Content-Type"] = prometheus.CONTENT_TYPE
    return response
