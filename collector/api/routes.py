"""The API's handlers: runs, one run, its metric keys, a series window, health, the counters.

Every store call runs in a worker thread (``asyncio.to_thread``): SQLite reads block, and the
event loop must keep answering while a large series is read. The store gives each thread its
own reader connection.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import math
from typing import Any

from aiohttp import web

from aquarium.collector.columnar import CONTENT_TYPE as COLUMNS_TYPE
from aquarium.collector.columnar import encode_window, window_to_json

from . import prometheus
from .errors import BadRequestError, TooLargeError
from .keys import COUNTERS, SETTINGS, STORE
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
    store = request.app[STORE]
    run_id = request.match_info["run_id"]

    def read() -> list[str]:
        store.get_run(run_id)  # RunNotFoundError for an unknown run, rather than an empty list
        return store.metric_keys(run_id)

    return json_response({"run": run_id, "keys": await asyncio.to_thread(read)})


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
    window = await asyncio.to_thread(
        store.read_window, run_id, key, rank=rank, agg=agg, samples=samples, start=start, end=end
    )
    if samples is None and window.total > settings.max_raw_points:
        raise TooLargeError(
            f"{window.total:,} points: ask for samples=N or a step range (start, end); "
            f"at most {settings.max_raw_points:,} raw points an answer"
        )
    if query.get("times", "").lower() in ("0", "false", "no"):  # a history needs no log times: a third less
        window = dataclasses.replace(window, times=None)
    if query.get("format") == "columns" or COLUMNS_TYPE in request.headers.get("Accept", ""):
        return web.Response(body=await asyncio.to_thread(encode_window, window), content_type=COLUMNS_TYPE)
    return json_response(window_to_json(window))


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
