"""Uploads to a served API (a real socket, stdlib ``http.client`` as the agent uses): the token
guards them on a public bind, and a large body streams to disk without being held in memory."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis
from aiohttp import web
from batches import make_batch
from ledger import KEYS, CollectorThread, wait_until

from aquarium.agent.wire import ArtifactRecord, Batch, BatchId, pack_batch
from aquarium.cli.api import start_beside
from aquarium.collector import Api, Store
from aquarium.collector.advertise import api_key
from aquarium.collector.api import ApiServer, ApiSettings, create_app

TOKEN = "s3cret-token"


@pytest.fixture
def public_api(store: Store) -> Iterator[ApiServer]:
    """The API on every interface (0.0.0.0), which needs a token."""
    store.ingest([make_batch(0, [0], [1.0])])
    settings = ApiSettings(host="0.0.0.0", port=0, token=TOKEN)
    with ApiServer(create_app(store, settings), settings) as server:
        yield server


def request(
    server: ApiServer, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60, blocksize=1 << 20)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, json.loads(response.read() or b"{}")
    finally:
        conn.close()


def upload_headers(data: bytes, token: str | None) -> dict[str, str]:
    headers = {"Content-Length": str(len(data)), "X-Aquarium-Sha256": hashlib.sha256(data).hexdigest()}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


@pytest.mark.parametrize(("token", "status", "code"), [(None, 401, "unauthorized"), ("wrong", 403, "forbidden")])
def test_uploads_need_the_token_on_a_public_bind(
    public_api: ApiServer, store: Store, token: str | None, status: int, code: str
) -> None:
    data = b"guarded"
    upload = uuid.uuid4().hex
    got = request(public_api, "PUT", f"/api/runs/r1/artifacts/{upload}/content", data, upload_headers(data, token))
    assert got == (status, got[1]) and got[1]["code"] == code
    link = {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data), "changed": False}
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {token}"} if token else {})}
    got = request(public_api, "POST", f"/api/runs/r1/artifacts/{upload}/link", json.dumps(link), headers)
    assert got[0] == status
    assert store.upload_state("r1", upload) == ("pending", None)
    assert not (store.data_dir / "blobs" / "sha256").exists()


def test_an_upload_carrying_the_token_is_stored(public_api: ApiServer, store: Store) -> None:
    data = b"allowed"
    rec = ArtifactRecord(uuid.uuid4().hex, "ok.txt", "file", len(data), 1.7e9)
    store.ingest([Batch(BatchId("r1", 0, "inc-a", 1), artifacts=[rec])])
    path = f"/api/runs/r1/artifacts/{rec.upload}/content"
    assert request(public_api, "PUT", path, data, upload_headers(data, TOKEN)) == (201, {"state": "stored"})
    assert store.artifact("r1", "ok.txt")["sha256"] == hashlib.sha256(data).hexdigest()


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def test_a_200_mb_upload_streams_to_disk_and_the_body_is_never_read_whole(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The server runs in this process (a thread), so ``request.read()`` can be forbidden outright;
    the resident set is printed (measured, not asserted: it depends on the machine)."""

    async def forbidden(self: web.BaseRequest) -> bytes:
        raise AssertionError("an upload body was read into memory")

    monkeypatch.setattr(web.BaseRequest, "read", forbidden)
    block = os.urandom(1 << 20)
    source, digest = tmp_path / "big.bin", hashlib.sha256()
    with source.open("wb") as f:
        for _ in range(200):
            f.write(block)
            digest.update(block)
    size = source.stat().st_size
    rec = ArtifactRecord(uuid.uuid4().hex, "big.bin", "file", size, 1.7e9)
    store.ingest([make_batch(0, [0], [1.0]), Batch(BatchId("r1", 0, "inc-a", 1), artifacts=[rec])])
    settings = ApiSettings(port=0)
    reset_peak = Path("/proc/self/clear_refs")
    with ApiServer(create_app(store, settings), settings) as server:
        before = _rss_kib("VmRSS")
        try:
            reset_peak.write_text("5")  # VmHWM from here on (Linux >= 4.0)
        except OSError:
            pass
        headers = {"Content-Length": str(size), "X-Aquarium-Sha256": digest.hexdigest()}
        with source.open("rb") as body:
            status, answer = request(server, "PUT", f"/api/runs/r1/artifacts/{rec.upload}/content", body, headers)
        peak, after = _rss_kib("VmHWM"), _rss_kib("VmRSS")
    assert (status, answer) == (201, {"state": "stored"})
    stored = store.data_dir / "blobs" / "sha256" / digest.hexdigest()[:2] / digest.hexdigest()[2:4] / digest.hexdigest()
    assert stored.stat().st_size == size
    with capsys.disabled():
        print(
            f"\n200 MB upload: RSS before {before / 1024:.0f} MiB, peak during {peak / 1024:.0f} MiB, "
            f"after {after / 1024:.0f} MiB (peak - before: {(peak - before) / 1024:+.0f} MiB)"
        )


def test_end_to_end_record_through_the_stream_bytes_to_the_advertised_api(
    client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    """What an agent does: the record in a batch on the stream, the API found in Redis, link
    (blob missing), PUT; then anyone downloads the bytes through the same API."""
    data = os.urandom(2 << 20)
    digest = hashlib.sha256(data).hexdigest()
    rec = ArtifactRecord(uuid.uuid4().hex, "out/model.bin", "model", len(data), 1.7e9, framework="pytorch")
    with CollectorThread(redis_url, data_dir) as running:
        server = start_beside(running.collector, "127.0.0.1", 0)
        try:
            client.xadd(KEYS.stream, {"b": pack_batch(Batch(BatchId("e2e", 0, "inc-a", 0), artifacts=[rec]))})
            wait_until(lambda: running.collector.stats.stored == 1, "the record stored")
            url = urlsplit(client.hget(api_key(KEYS), "url").decode())
            assert url.port == server.port
            base = f"/api/runs/e2e/artifacts/{rec.upload}"
            link = json.dumps({"sha256": digest, "size": len(data), "changed": False})
            headers = {"Content-Type": "application/json"}
            assert request(server, "POST", base + "/link", link, headers)[1]["code"] == "blob_missing"
            put_headers = {"Content-Length": str(len(data)), "X-Aquarium-Sha256": digest}
            assert request(server, "PUT", base + "/content", data, put_headers) == (201, {"state": "stored"})
            with Api(server.url) as api:
                [listed] = api.artifacts("e2e")
                assert (listed["state"], listed["sha256"], listed["framework"]) == ("stored", digest, "pytorch")
                path = api.download_artifact("e2e", "out/model.bin", tmp_path / "got")
            assert hashlib.sha256(path.read_bytes()).hexdigest() == digest
        finally:
            server.stop()
