"""Artifact uploads and downloads through the real HTTP app over a real store.

Records are packed with the wire format and ingested as the collector would; bytes go through
the link and PUT routes as the agent sends them. Each test reads back what the store and the
blob directory hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer
from batches import make_batch

from aquarium.agent.wire import ArtifactRecord, Batch, BatchId, pack_batch, unpack_batch
from aquarium.collector import Store
from aquarium.collector.api import ApiSettings, create_app

Check = Callable[[TestClient[Any, Any]], Awaitable[None]]


def serve(store: Store, check: Check, settings: ApiSettings | None = None) -> None:
    async def main() -> None:
        async with TestClient(TestServer(create_app(store, settings))) as client:
            await check(client)

    asyncio.run(main())


def record(
    name: str, data: bytes, *, kind: str = "file", media_type: str = "application/octet-stream", **extra: Any
) -> ArtifactRecord:
    return ArtifactRecord(uuid.uuid4().hex, name, kind, len(data), 1.7e9, media_type=media_type, **extra)


def ingest_records(store: Store, *records: ArtifactRecord, run: str = "r1", rank: int = 0, seq: int = 1) -> None:
    """Through the wire format, as the collector receives them."""
    batch = Batch(BatchId(run, rank, "inc-a", seq), artifacts=list(records))
    store.ingest([unpack_batch(pack_batch(batch))])


def start_run(store: Store, run: str = "r1", ranks: int = 1) -> None:
    store.ingest([make_batch(0, [0], [1.0], run=run, rank=r) for r in range(ranks)])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def put(
    client: TestClient[Any, Any],
    upload: str,
    data: bytes,
    *,
    run: str = "r1",
    digest: str | None = None,
    **headers: str,
) -> Any:
    return await client.put(
        f"/api/runs/{run}/artifacts/{upload}/content",
        data=data,
        headers={"X-Aquarium-Sha256": digest or sha(data), "Content-Length": str(len(data)), **headers},
    )


async def link(
    client: TestClient[Any, Any], upload: str, data: bytes, *, run: str = "r1", changed: bool = False
) -> Any:
    return await client.post(
        f"/api/runs/{run}/artifacts/{upload}/link", json={"sha256": sha(data), "size": len(data), "changed": changed}
    )


def blob_files(store: Store) -> list[Path]:
    return sorted(p for p in (store.data_dir / "blobs" / "sha256").rglob("*") if p.is_file())


def temp_files(store: Store) -> list[Path]:
    tmp = store.data_dir / "blobs" / "tmp"
    return sorted(tmp.iterdir()) if tmp.exists() else []


def test_record_then_upload_is_stored_and_downloads_the_same_bytes(store: Store) -> None:
    data = os.urandom(300_000)
    start_run(store)
    rec = record("weights/model.bin", data, kind="model", framework="pytorch", step=7, meta={"epoch": 3})
    ingest_records(store, rec)
    assert store.artifacts("r1")[0]["state"] == "pending"

    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/r1/artifacts/weights/model.bin")
        assert r.status == 404 and (await r.json())["code"] == "artifact_pending"
        r = await link(client, rec.upload, data)
        assert r.status == 404 and (await r.json())["code"] == "blob_missing"
        r = await put(client, rec.upload, data)
        assert r.status == 201, await r.text()
        assert (await r.json())["state"] == "stored"
        r = await client.get("/api/runs/r1/artifacts")
        [listed] = (await r.json())["artifacts"]
        assert listed == {
            "upload": rec.upload, "name": "weights/model.bin", "kind": "model", "rank": 0, "size": len(data),
            "sha256": sha(data), "step": 7, "framework": "pytorch", "media_type": "application/octet-stream",
            "meta": {"epoch": 3}, "logged_at": 1.7e9, "state": "stored",
        }  # fmt: skip
        r = await client.get("/api/runs/r1/artifacts/weights/model.bin")
        assert r.status == 200
        assert await r.read() == data
        assert r.headers["ETag"] == f'"{sha(data)}"'
        assert r.headers["Content-Type"] == "application/octet-stream"
        assert r.headers["Content-Disposition"].startswith("attachment;")
        assert r.headers["X-Content-Type-Options"] == "nosniff"

    serve(store, check)
    assert blob_files(store) == [store.data_dir / "blobs" / "sha256" / sha(data)[:2] / sha(data)[2:4] / sha(data)]
    assert temp_files(store) == []


def test_upload_then_record_is_stored(store: Store) -> None:
    data = b"written before its record arrived"
    start_run(store)
    rec = record("notes.txt", data, media_type="text/plain")

    async def check(client: TestClient[Any, Any]) -> None:
        r = await put(client, rec.upload, data)
        assert r.status == 201 and (await r.json())["state"] == "stored"
        r = await client.get("/api/runs/r1/artifacts")
        assert (await r.json())["artifacts"] == []  # a completion without a record lists nothing
        ingest_records(store, rec)
        r = await client.get("/api/runs/r1/artifacts")
        [listed] = (await r.json())["artifacts"]
        assert listed["state"] == "stored" and listed["sha256"] == sha(data)
        r = await client.get("/api/runs/r1/artifacts/notes.txt")
        assert await r.read() == data and r.headers["Content-Type"].startswith("text/plain")

    serve(store, check)
