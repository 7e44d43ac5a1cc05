"""The HTTP API's handlers, driven by aiohttp's test client over a real store.

Each test builds its store from hand-made batches (known params, tags and points), then asks
the API as a client would and checks the answer against what was stored.
"""

from __future__ import annotations

import asyncio
import json
import math
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp.test_utils import TestClient, TestServer
from batches import make_batch

from aquarium.collector import Store
from aquarium.collector.api import ApiSettings, create_app
from aquarium.collector.columnar import CONTENT_TYPE, decode_window


def run_client(
    store: Store, check: Callable[[TestClient[Any, Any]], Awaitable[None]], settings: ApiSettings | None = None
) -> None:
    async def main() -> None:
        async with TestClient(TestServer(create_app(store, settings))) as client:
            await check(client)

    asyncio.run(main())


@pytest.fixture
def filled(store: Store) -> Iterator[Store]:
    """Four runs: two with params and tags, one with two ranks and an HTML name, one whose last
    value is NaN."""
    steps = list(range(1000))
    store.ingest(
        [
            make_batch(
                0,
                steps,
                [1.0 / (s + 1) for s in steps],
                run="fast",
                params={"lr": 0.01, "optimizer.name": "adam"},
                tags={"prod": "", "team": "vision"},
                meta={"experiment": "exp", "name": "fast"},
                status=[("running", 1.7e9)],
            ),
            make_batch(
                0, steps, [2.0 / (s + 1) for s in steps], run="slow", params={"lr": 0.0001}, meta={"experiment": "exp"}
            ),
            make_batch(0, [0, 1, 2], [1.0, math.nan, 3.0], run="ranked", key="acc", meta={"name": "<b>bold</b>"}),
            make_batch(0, [0, 1, 2], [5.0, 6.0, 7.0], run="ranked", key="acc", rank=1),
            make_batch(1, [0, 1], [1.0, 2.0], run="ranked", key="train/loss"),
            make_batch(0, [0, 1], [1.0, math.nan], run="nan-last", key="x"),
        ]
    )
    yield store


def test_runs_are_filtered_sorted_and_paged_with_the_total(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs", params={"filter": "params.lr > 1e-3"})
        assert r.status == 200
        body = await r.json()
        assert [run["id"] for run in body["runs"]] == ["fast"] and body["total"] == 1
        assert body["runs"][0]["params"] == {"lr": 0.01, "optimizer.name": "adam"}
        assert body["runs"][0]["tags"] == {"prod": "", "team": "vision"}
        r = await client.get("/api/runs", params={"sort": "-metrics.loss.min", "limit": "1", "offset": "1"})
        body = await r.json()
        assert body["total"] == 4 and body["limit"] == 1 and body["offset"] == 1
        assert [run["id"] for run in body["runs"]] == ["fast"]  # slow (2/1000) > fast (1/1000) > the others (none)

    run_client(filled, check)


def test_a_bad_filter_is_a_400_with_its_position(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        for bad in ("params.lr >", "nonsense == 1", "name ~ '('", "x" * 5000):
            r = await client.get("/api/runs", params={"filter": bad})
            body = await r.json()
            assert r.status == 400, (bad, body)
            assert body["code"] == "bad_query" and isinstance(body["position"], int), body
            assert body["error"]

    run_client(filled, check)


def test_run_detail_keys_and_unknown_ids(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/ranked")
        run = await r.json()
        assert r.status == 200 and run["ranks"] == [0, 1]
        assert run["name"] == "<b>bold</b>"  # data, never markup
        assert r.headers["Content-Type"].startswith("application/json")
        assert r.headers["X-Content-Type-Options"] == "nosniff"
        assert run["metrics"]["acc"]["count"] == 6
        r = await client.get("/api/runs/ranked/keys")
        assert (await r.json())["keys"] == ["acc", "train/loss"]
        for path in ("/api/runs/nope", "/api/runs/nope/keys", "/api/runs/nope/series/loss"):
            r = await client.get(path)
            body = await r.json()
            assert (r.status, body["code"]) == (404, "unknown_run"), path
        r = await client.get("/api/runs/fast/series/missing")
        assert (r.status, (await r.json())["code"]) == (404, "unknown_key")
        r = await client.get("/api/nothing-here")
        assert r.status == 404 and "error" in await r.json()

    run_client(filled, check)


def test_series_json_downsampled_aggregated_and_ranged(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/fast/series/loss", params={"samples": "100"})
        body = await r.json()
        assert r.status == 200 and body["run"] == "fast" and body["key"] == "loss" and body["rank"] == 0
        assert len(body["steps"]) <= 100 and body["total"] == 1000
        assert body["steps"][0] == 0 and body["steps"][-1] == 999
        assert body["values"][0] == 1.0
        r = await client.get("/api/runs/fast/series/loss", params={"start": "10", "end": "19"})
        body = await r.json()
        assert body["steps"] == list(range(10, 20)) and body["values"] == [1.0 / (s + 1) for s in range(10, 20)]
        r = await client.get("/api/runs/ranked/series/acc", params={"agg": "all"})
        body = await r.json()
        assert body["agg"] == "all" and body["steps"] == [0, 1, 2]
        assert body["min"] == [1.0, 6.0, 3.0] and body["max"] == [5.0, 6.0, 7.0]
        assert body["values"] == [3.0, 6.0, 5.0]  # the NaN of rank 0 is left out of the mean
        r = await client.get("/api/runs/ranked/series/acc", params={"rank": "0"})
        assert (await r.json())["values"] == [1.0, None, 3.0]  # JSON has no NaN: null
        r = await client.get("/api/runs/ranked/series/train%2Floss")
        assert (await r.json())["values"] == [1.0, 2.0]

    run_client(filled, check)


def test_series_columns_keep_nan_exact(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        for how in ({"params": {"format": "columns", "rank": "0"}}, {"headers": {"Accept": CONTENT_TYPE}}):
            r = await client.get("/api/runs/ranked/series/acc", **how)  # type: ignore[arg-type]
            assert r.status == 200 and r.headers["Content-Type"].startswith(CONTENT_TYPE)
            window = decode_window(await r.read())
            assert list(window.steps) == [0, 1, 2]
            assert np.isnan(window.values[1]) and window.values[2] == 3.0

    run_client(filled, check)


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"samples": "0"}, 400),
        ({"samples": "-5"}, 400),
        ({"samples": "many"}, 400),
        ({"start": "10", "end": "5"}, 400),
        ({"agg": "median"}, 400),
        ({"rank": "0", "agg": "mean"}, 400),
        ({"samples": "100000000"}, 413),
    ],
)
def test_bad_series_parameters(filled: Store, query: dict[str, str], status: int) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/fast/series/loss", params=query)
        body = await r.json()
        assert r.status == status, body
        assert body["error"]

    run_client(filled, check)


def test_a_raw_series_beyond_the_bound_is_refused(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/fast/series/loss")
        assert r.status == 413 and "samples" in (await r.json())["error"]
        r = await client.get("/api/runs/fast/series/loss", params={"samples": "50"})
        assert r.status == 200
        r = await client.get("/api/runs/fast/series/loss", params={"end": "99"})
        assert r.status == 200 and len((await r.json())["steps"]) == 100

    run_client(filled, check, ApiSettings(max_raw_points=500))


def test_a_page_larger_than_the_bound_is_refused(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs", params={"limit": "10001"})
        assert r.status == 413
        r = await client.get("/api/runs", params={"limit": "0"})
        assert r.status == 400

    run_client(filled, check)


def test_the_token_is_required_and_checked(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs")
        assert r.status == 401 and r.headers["WWW-Authenticate"].startswith("Bearer")
        r = await client.get("/api/runs", headers={"Authorization": "Bearer wrong"})
        assert r.status == 403 and (await r.json())["code"] == "forbidden"
        r = await client.get("/api/runs", headers={"Authorization": "Basic c2VjcmV0"})
        assert r.status == 401
        r = await client.get("/metrics", headers={"Authorization": "Bearer s3cret-token"})
        assert r.status == 200
        r = await client.get("/api/runs", headers={"Authorization": "Bearer s3cret-token"})
        assert r.status == 200 and (await r.json())["total"] == 4

    run_client(filled, check, ApiSettings(token="s3cret-token"))


def test_health_openapi_and_metrics(filled: Store) -> None:
    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/health")
        assert (await r.json())["store_id"] == filled.store_id
        r = await client.get("/api/openapi.json")
        doc = await r.json()
        assert doc["openapi"].startswith("3.") and "/api/runs/{run_id}/series/{key}" in doc["paths"]
        r = await client.get("/metrics")
        text = await r.text()
        assert r.headers["Content-Type"].startswith("text/plain")
        size = next(line for line in text.splitlines() if line.startswith("aquarium_store_bytes "))
        assert int(size.split()[1]) == filled.path.stat().st_size + _wal_size(filled.path)

    run_client(filled, check)


def _wal_size(db: Path) -> int:
    total = 0
    for suffix in ("-wal", "-shm"):
        path = db.with_name(db.name + suffix)
        total += path.stat().st_size if path.exists() else 0
    return total


def test_json_answers_never_carry_nan(filled: Store) -> None:
    """A run whose last value is NaN: JSON.parse in a browser must still read the answer."""

    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/nan-last")
        assert (await r.json())["metrics"]["x"]["last"] is None
        text = await r.text()
        assert "NaN" not in text and "Infinity" not in text
        json.loads(text, parse_constant=lambda c: pytest.fail(f"non-standard JSON constant {c}"))

    run_client(filled, check)
