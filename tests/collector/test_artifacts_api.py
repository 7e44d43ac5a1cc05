"""Artifact uploads and downloads through the real HTTP app over a real store.

Records are packed with the wire format and ingested as the collector would; bytes go through
the link and PUT routes as the agent sends them. Each test reads back what the store and the
blob directory hold.
"""

from __future__ import annotations

import asyncio
import errno
import hashlib
import json
import math
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from aiohttp.test_utils import TestClient, TestServer
from batches import make_batch

from aquarium.agent.wire import ArtifactRecord, Batch, BatchId, pack_batch, unpack_batch
from aquarium.collector import Store
from aquarium.collector.api import ApiConfigError, ApiSettings, create_app
from aquarium.collector.blobs import BlobStore, BlobWriter

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


def test_the_same_bytes_from_eight_ranks_are_stored_once_and_sent_once(store: Store) -> None:
    data = os.urandom(100_000)
    start_run(store, ranks=8)
    recs = [record("ckpt/final.pt", data, kind="model") for _ in range(8)]
    for rank, rec in enumerate(recs):
        ingest_records(store, rec, rank=rank)

    async def check(client: TestClient[Any, Any]) -> None:
        sent = []
        for rec in recs:  # what the agent does: link first, PUT only when the blob is missing
            r = await link(client, rec.upload, data)
            if r.status == 404:
                assert (await r.json())["code"] == "blob_missing"
                r = await put(client, rec.upload, data)
                assert r.status == 201
                sent.append(rec.upload)
            else:
                assert r.status == 200 and (await r.json())["state"] == "stored"
        assert sent == [recs[0].upload]  # the other seven sent no bytes
        r = await client.get("/api/runs/r1/artifacts")
        listed = (await r.json())["artifacts"]
        assert sorted(a["rank"] for a in listed) == list(range(8))
        assert {(a["state"], a["sha256"]) for a in listed} == {("stored", sha(data))}
        r = await client.get("/api/runs/r1/artifacts/ckpt/final.pt", params={"rank": "5"})
        assert await r.read() == data

    serve(store, check)
    assert len(blob_files(store)) == 1 and temp_files(store) == []


def test_a_body_that_does_not_hash_to_the_announced_sha256_is_refused_and_leaves_nothing(store: Store) -> None:
    start_run(store)
    data = b"the real bytes"
    rec = record("a.bin", data)
    ingest_records(store, rec)

    async def check(client: TestClient[Any, Any]) -> None:
        r = await put(client, rec.upload, data, digest=sha(b"other bytes"))
        assert r.status == 400
        body = await r.json()
        assert body["code"] == "sha256_mismatch" and sha(data) in body["error"]

    serve(store, check)
    assert blob_files(store) == [] and temp_files(store) == []
    assert store.artifacts("r1")[0]["state"] == "pending"


def test_a_body_cut_short_by_the_client_stores_nothing(store: Store) -> None:
    start_run(store)
    rec = record("big.bin", b"x" * 100_000)
    ingest_records(store, rec)

    async def check(client: TestClient[Any, Any]) -> None:
        server = client.server
        reader, writer = await asyncio.open_connection(server.host, server.port)
        head = (
            f"PUT /api/runs/r1/artifacts/{rec.upload}/content HTTP/1.1\r\nHost: x\r\n"
            f"Content-Length: 100000\r\nX-Aquarium-Sha256: {sha(b'x' * 100_000)}\r\n\r\n"
        )
        writer.write(head.encode() + b"x" * 40_000)
        await writer.drain()
        await wait_for(lambda: bool(temp_files(store)), "the upload started")
        writer.close()  # the client goes away 40 kB into 100 kB
        await writer.wait_closed()
        await wait_for(lambda: not temp_files(store), "the temporary file removed")

    serve(store, check)
    assert blob_files(store) == []
    assert store.upload_state("r1", rec.upload) == ("pending", None)


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, f"timed out waiting for: {what}"
        await asyncio.sleep(0.01)


def test_an_upload_over_the_limit_is_refused_before_it_is_read_with_the_limit_in_the_message(store: Store) -> None:
    start_run(store)
    data = b"y" * 2000
    rec = record("big.bin", data)

    async def check(client: TestClient[Any, Any]) -> None:
        for r in (await put(client, rec.upload, data), await link(client, rec.upload, data)):
            assert r.status == 413
            body = await r.json()
            assert body["code"] == "too_large" and "1,000 bytes" in body["error"] and body["limit"] == 1000

    serve(store, check, ApiSettings(max_artifact_bytes=1000))
    assert temp_files(store) == [] and blob_files(store) == []


def test_the_limit_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ApiSettings.from_env().max_artifact_bytes == 20 * 1024**3
    monkeypatch.setenv("AQUARIUM_API_MAX_ARTIFACT_BYTES", "5_000")
    assert ApiSettings.from_env().max_artifact_bytes == 5000
    monkeypatch.setenv("AQUARIUM_API_MAX_ARTIFACT_BYTES", "lots")
    with pytest.raises(ApiConfigError, match="AQUARIUM_API_MAX_ARTIFACT_BYTES='lots'"):
        ApiSettings.from_env()


def test_chunked_uploads_and_bad_headers_are_refused(store: Store) -> None:
    start_run(store)
    upload = uuid.uuid4().hex

    async def chunks() -> Any:
        yield b"abc"

    async def check(client: TestClient[Any, Any]) -> None:
        path = f"/api/runs/r1/artifacts/{upload}/content"
        r = await client.put(path, data=chunks(), headers={"X-Aquarium-Sha256": sha(b"abc")})
        assert r.status == 411 and (await r.json())["code"] == "length_required"
        r = await client.put(path, data=b"abc")
        assert r.status == 400 and "X-Aquarium-Sha256" in (await r.json())["error"]
        r = await put(client, "NOT-AN-UPLOAD-ID", b"abc")
        assert r.status == 400 and (await r.json())["code"] == "bad_request"
        for bad in ({"sha256": "zz", "size": 3}, {"sha256": sha(b"abc"), "size": -1}, [1]):
            r = await client.post(f"/api/runs/r1/artifacts/{upload}/link", json=bad)
            assert r.status == 400 and (await r.json())["code"] == "bad_request"
        r = await client.post(f"/api/runs/r1/artifacts/{upload}/link", data=b"not json")
        assert r.status == 400

    serve(store, check)
    assert temp_files(store) == [] and blob_files(store) == []


def test_an_unknown_run_is_404_everywhere(store: Store) -> None:
    data = b"abc"
    upload = uuid.uuid4().hex

    async def check(client: TestClient[Any, Any]) -> None:
        for r in (await put(client, upload, data, run="nope"), await link(client, upload, data, run="nope")):
            assert r.status == 404 and (await r.json())["code"] == "run_not_found"  # the agent retries these
        r = await client.get("/api/runs/nope/artifacts")
        assert r.status == 404 and (await r.json())["code"] == "unknown_run"
        r = await client.get("/api/runs/nope/artifacts/a.txt")
        assert r.status == 404 and (await r.json())["code"] == "unknown_run"

    serve(store, check)
    assert temp_files(store) == [] and blob_files(store) == []


def test_an_unknown_name_is_404(store: Store) -> None:
    start_run(store)

    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/r1/artifacts/missing.txt")
        assert r.status == 404 and (await r.json())["code"] == "unknown_artifact"
        r = await client.get("/api/runs/r1/artifacts/missing.txt", params={"rank": "x"})
        assert r.status == 400

    serve(store, check)


def test_a_repeated_put_or_link_is_idempotent_and_other_bytes_conflict(store: Store) -> None:
    start_run(store)
    data = b"once"
    rec = record("once.txt", data)
    ingest_records(store, rec)

    async def check(client: TestClient[Any, Any]) -> None:
        assert (await put(client, rec.upload, data)).status == 201
        for r in (await put(client, rec.upload, data), await link(client, rec.upload, data)):
            assert r.status == 200 and (await r.json())["state"] == "stored"
        r = await put(client, rec.upload, b"nope")
        assert r.status == 409 and (await r.json())["code"] == "upload_conflict"

    serve(store, check)
    assert len(blob_files(store)) == 1 and temp_files(store) == []


HTML_NAME = 'report/<img src=x onerror="alert(1)">;x.html'


def test_a_name_with_html_round_trips_as_data(store: Store) -> None:
    start_run(store)
    data = b"<html>evil</html>"
    rec = record(HTML_NAME, data, media_type="text/html")
    ingest_records(store, rec)

    async def check(client: TestClient[Any, Any]) -> None:
        assert (await put(client, rec.upload, data)).status == 201
        r = await client.get("/api/runs/r1/artifacts")
        assert r.headers["Content-Type"].startswith("application/json")
        text = await r.text()
        assert "<" not in text and ">" not in text  # escaped (\\u003c): no markup even if sniffed
        assert json.loads(text)["artifacts"][0]["name"] == HTML_NAME
        r = await client.get("/api/runs/r1/artifacts/" + quote(HTML_NAME))
        assert r.status == 200 and await r.read() == data
        disposition = r.headers["Content-Disposition"]
        assert disposition.startswith("attachment;")  # HTML is never rendered inline
        assert '"' not in disposition.split('filename="', 1)[1].split('";', 1)[0]  # the quoted name stays quoted
        assert "<" not in disposition and ";x.html" not in disposition
        assert r.headers["Content-Security-Policy"] == "sandbox"
        assert r.headers["X-Content-Type-Options"] == "nosniff"

    serve(store, check)


@pytest.mark.parametrize(
    ("media_type", "disposition"),
    [("image/png", "inline"), ("image/svg+xml", "attachment"), ("application/x-python-pickle", "attachment")],
)
def test_download_content_type_and_inline_images(store: Store, media_type: str, disposition: str) -> None:
    start_run(store)
    data = b"\x89PNG\r\n\x1a\n" + os.urandom(64)
    rec = record("figures/loss.png", data, kind="figure", media_type=media_type)
    ingest_records(store, rec)

    async def check(client: TestClient[Any, Any]) -> None:
        assert (await put(client, rec.upload, data)).status == 201
        r = await client.get("/api/runs/r1/artifacts/figures/loss.png")
        assert r.headers["Content-Type"] == media_type
        assert r.headers["Content-Disposition"] == f"{disposition}; filename=\"loss.png\"; filename*=UTF-8''loss.png"
        assert int(r.headers["Content-Length"]) == len(data) and await r.read() == data

    serve(store, check)


def test_a_symlink_planted_in_the_blob_dir_is_not_served(store: Store, tmp_path: Path) -> None:
    start_run(store)
    secret = tmp_path / "secret.txt"
    secret.write_bytes(b"outside the blob store")
    rec = record("a.txt", secret.read_bytes())
    ingest_records(store, rec)
    digest = sha(secret.read_bytes())
    store.complete_upload("r1", rec.upload, digest, len(secret.read_bytes()), False)  # as if uploaded
    planted = BlobStore(store.data_dir).path_of(digest)
    planted.parent.mkdir(parents=True)
    planted.symlink_to(secret)

    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/r1/artifacts/a.txt")
        assert r.status == 403 and (await r.json())["code"] == "unsafe_blob"
        assert b"outside" not in await r.read()
        r = await link(client, uuid.uuid4().hex, secret.read_bytes())  # a symlink is no stored blob either
        assert r.status == 404 and (await r.json())["code"] == "blob_missing"

    serve(store, check)


def test_a_symlinked_directory_in_the_blob_dir_is_not_served(store: Store, tmp_path: Path) -> None:
    start_run(store)
    data = b"planted under a symlinked directory"
    digest = sha(data)
    outside = tmp_path / "elsewhere" / digest[2:4]
    outside.mkdir(parents=True)
    (outside / digest).write_bytes(data)
    (store.data_dir / "blobs" / "sha256" / digest[:2]).mkdir(parents=True)
    (store.data_dir / "blobs" / "sha256" / digest[:2] / digest[2:4]).symlink_to(outside)
    rec = record("b.txt", data)
    ingest_records(store, rec)
    store.complete_upload("r1", rec.upload, digest, len(data), False)

    async def check(client: TestClient[Any, Any]) -> None:
        r = await client.get("/api/runs/r1/artifacts/b.txt")
        assert r.status == 403 and (await r.json())["code"] == "unsafe_blob"

    serve(store, check)


def test_a_read_only_api_refuses_uploads_with_503_and_still_serves_downloads(store: Store) -> None:
    start_run(store)
    data = b"stored by the collector"
    rec = record("a.txt", data)
    ingest_records(store, rec)
    serve(store, lambda client: _put_ok(client, rec.upload, data))
    with Store(store.data_dir, read_only=True) as reader:

        async def check(client: TestClient[Any, Any]) -> None:
            for r in (await put(client, uuid.uuid4().hex, b"x"), await link(client, uuid.uuid4().hex, b"x")):
                assert r.status == 503 and (await r.json())["code"] == "uploads_unavailable"
            r = await client.get("/api/runs/r1/artifacts/a.txt")
            assert await r.read() == data

        serve(reader, check)


async def _put_ok(client: TestClient[Any, Any], upload: str, data: bytes) -> None:
    assert (await put(client, upload, data)).status == 201


def test_every_artifact_route_is_in_the_openapi_document(store: Store) -> None:
    app = create_app(store)
    routes = {
        (route.method.lower(), re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.resource.canonical))
        for route in app.router.routes()
        if route.resource is not None and "/artifacts" in route.resource.canonical and route.method != "HEAD"
    }
    assert len(routes) == 4

    async def check(client: TestClient[Any, Any]) -> None:
        doc = await (await client.get("/api/openapi.json")).json()
        documented = {(method, path) for path, item in doc["paths"].items() for method in item}
        assert routes <= documented

    serve(store, check)


def test_a_disk_that_cannot_take_the_bytes_is_a_503_and_leaves_nothing(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    start_run(store)
    data = b"no room"
    rec = record("a.bin", data)

    def full(self: BlobWriter, chunk: bytes) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(BlobWriter, "write", full)

    async def check(client: TestClient[Any, Any]) -> None:
        r = await put(client, rec.upload, data)
        assert r.status == 503
        body = await r.json()
        assert body["code"] == "storage_unavailable" and "No space left" in body["error"]

    serve(store, check)
    assert temp_files(store) == [] and blob_files(store) == []
    assert store.upload_state("r1", rec.upload) == ("pending", None)


def test_head_of_a_download_sends_the_headers_only(store: Store) -> None:
    start_run(store)
    data = b"head me"
    rec = record("h.txt", data)
    ingest_records(store, rec)

    async def check(client: TestClient[Any, Any]) -> None:
        assert (await put(client, rec.upload, data)).status == 201
        r = await client.head("/api/runs/r1/artifacts/h.txt")
        assert r.status == 200 and r.headers["ETag"] == f'"{sha(data)}"'
        assert int(r.headers["Content-Length"]) == len(data) and await r.read() == b""

    serve(store, check)


def test_metrics_count_the_artifacts_waiting_for_their_bytes(store: Store) -> None:
    start_run(store)
    data = b"one of two"
    done, waiting = record("done.bin", data), record("waiting.bin", data)
    ingest_records(store, done, waiting)

    async def pending(client: TestClient[Any, Any]) -> int:
        text = await (await client.get("/metrics")).text()
        return int(
            next(line for line in text.splitlines() if line.startswith("aquarium_artifacts_pending ")).split()[1]
        )

    async def check(client: TestClient[Any, Any]) -> None:
        assert await pending(client) == 2
        assert (await put(client, done.upload, data)).status == 201
        assert await pending(client) == 1

    serve(store, check)


def test_an_empty_file_is_an_artifact_too(store: Store) -> None:
    start_run(store)
    rec = record("empty.txt", b"")
    ingest_records(store, rec)

    async def check(client: TestClient[Any, Any]) -> None:
        r = await put(client, rec.upload, b"")
        assert r.status == 201 and (await r.json())["state"] == "stored"
        r = await client.get("/api/runs/r1/artifacts/empty.txt")
        assert r.status == 200 and await r.read() == b""

    serve(store, check)
    assert len(blob_files(store)) == 1


def test_non_finite_meta_values_are_null_in_strict_json(store: Store) -> None:
    start_run(store)
    ingest_records(store, record("m.bin", b"m", meta={"loss": math.nan, "best": math.inf, "ok": 1.5}))

    async def check(client: TestClient[Any, Any]) -> None:
        text = await (await client.get("/api/runs/r1/artifacts")).text()
        assert "NaN" not in text and "Infinity" not in text
        assert json.loads(text)["artifacts"][0]["meta"] == {"loss": None, "best": None, "ok": 1.5}

    serve(store, check)


async def _raw_put_with_expect(client: TestClient[Any, Any], upload: str, data: bytes) -> tuple[bytes, bytes]:
    """A PUT with ``Expect: 100-continue`` the way curl sends it: headers, wait for the interim
    answer, body only after ``100 Continue``. Returns (the first answer, the final answer)."""
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    try:
        writer.write(
            (
                f"PUT /api/runs/r1/artifacts/{upload}/content HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
                f"Content-Length: {len(data)}\r\nX-Aquarium-Sha256: {sha(data)}\r\n\r\n"
            ).encode()
        )
        await writer.drain()
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if not first.startswith(b"HTTP/1.1 100"):
            return first, b""
        writer.write(data)
        await writer.drain()
        final = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        return first, final
    finally:
        writer.close()


def test_expect_100_continue_refuses_an_oversized_upload_before_its_body_is_sent(store: Store) -> None:
    start_run(store)
    small, big = b"s" * 500, b"b" * 2000

    async def check(client: TestClient[Any, Any]) -> None:
        first, _ = await _raw_put_with_expect(client, uuid.uuid4().hex, big)
        assert first.startswith(b"HTTP/1.1 413")
        first, final = await _raw_put_with_expect(client, uuid.uuid4().hex, small)
        assert first.startswith(b"HTTP/1.1 100 Continue") and final.startswith(b"HTTP/1.1 201")

    serve(store, check, ApiSettings(max_artifact_bytes=1000))
    assert len(blob_files(store)) == 1
