"""Artifact uploads: throughput and the collector's memory while a large file streams in.

    python bench/artifact_store.py            # a 2 GiB file
    python bench/artifact_store.py --quick    # a 256 MiB file (< 30 s)

Real processes only: a private redis-server and the production ``aquarium collector
--http-port`` command. The record goes through the batch stream; the API is found where agents
find it (``HGET aquarium:api url``); the bytes go as the agent sends them (stdlib
``http.client``, a file body streamed in 1 MiB blocks, link first, then PUT). Then 7 more
"ranks" log the same bytes (each a link, no body), and the file is downloaded back.

Reported: upload and download MB/s, the time of the 7 dedup links, and the collector's resident
memory before and at its peak during the upload (VmRSS / VmHWM from /proc: the body is never
held in memory, so the peak should not grow with the file).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import console, emit_json, progress, table
from _processes import AQUARIUM, redis_server, stop_collector

BLOCK = 1 << 20


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _request(url: Any, method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600, blocksize=BLOCK)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        return response.status, data
    finally:
        conn.close()


def main() -> None:
    from urllib.parse import urlsplit

    import redis

    from aquarium.agent.redis_keys import RedisKeys
    from aquarium.agent.wire import ArtifactRecord, Batch, BatchId, pack_batch
    from aquarium.collector.advertise import api_key

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a 256 MiB file instead of 2 GiB")
    args = parser.parse_args()
    mib = 256 if args.quick else 2048
    keys = RedisKeys()
    with tempfile.TemporaryDirectory(prefix="aquarium-bench-artifacts-") as tmp:
        work = Path(tmp)
        progress(f"writing a {mib} MiB file")
        source, digest = work / "model.bin", hashlib.sha256()
        block = os.urandom(BLOCK)
        with source.open("wb") as f:
            for i in range(mib):
                chunk = block[:-8] + i.to_bytes(8, "little")  # no two blocks alike
                f.write(chunk)
                digest.update(chunk)
        size, sha = source.stat().st_size, digest.hexdigest()
        server = redis_server(work / "redis")
        server.start()
        collector = subprocess.Popen(
            [AQUARIUM, "collector", "--redis-url", server.url, "--data-dir", str(work / "data"), "--http-port", "0"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        client = redis.Redis.from_url(server.url)
        try:
            deadline = time.monotonic() + 60
            while not (advertised := client.hget(api_key(keys), "url")):
                if collector.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("the collector did not advertise its API")
                time.sleep(0.05)
            url = urlsplit(advertised.decode())
            records = [ArtifactRecord(uuid.uuid4().hex, "model.bin", "model", size, time.time()) for _ in range(8)]
            for rank, rec in enumerate(records):
                client.xadd(
                    keys.stream, {"b": pack_batch(Batch(BatchId("bench-artifacts", rank, "i", 0), artifacts=[rec]))}
                )
            while _request(url, "GET", "/api/runs/bench-artifacts/artifacts")[0] != 200:
                time.sleep(0.05)
            link = json.dumps({"sha256": sha, "size": size, "changed": False})
            json_headers = {"Content-Type": "application/json"}
            first = f"/api/runs/bench-artifacts/artifacts/{records[0].upload}"
            assert _request(url, "POST", first + "/link", link, json_headers)[0] == 404
            rss_before = _status_kib(collector.pid, "VmRSS")
            Path(f"/proc/{collector.pid}/clear_refs").write_text("5")  # VmHWM counts from here
            progress(f"uploading {mib} MiB to {advertised.decode()}")
            started = time.perf_counter()
            with source.open("rb") as body:
                status, answer = _request(
                    url, "PUT", first + "/content", body, {"Content-Length": str(size), "X-Aquarium-Sha256": sha}
                )
            upload_s = time.perf_counter() - started
            assert status == 201, answer
            rss_peak = _status_kib(collector.pid, "VmHWM")
            started = time.perf_counter()
            for rec in records[1:]:
                path = f"/api/runs/bench-artifacts/artifacts/{rec.upload}/link"
                assert _request(url, "POST", path, link, json_headers)[0] == 200
            links_ms = (time.perf_counter() - started) * 1000
            progress("downloading it back")
            conn = http.client.HTTPConnection(url.hostname, url.port, timeout=600)
            started = time.perf_counter()
            conn.request("GET", "/api/runs/bench-artifacts/artifacts/model.bin")
            response, check = conn.getresponse(), hashlib.sha256()
            while chunk := response.read(BLOCK):
                check.update(chunk)
            download_s = time.perf_counter() - started
            conn.close()
            assert check.hexdigest() == sha
            blobs = sum(1 for p in (work / "data" / "blobs" / "sha256").rglob("*") if p.is_file())
        finally:
            client.close()
            stop_collector(collector)
            server.stop()
    result = {
        "bench": "artifact_store",
        "mode": "quick" if args.quick else "full",
        "mib": mib,
        "upload_mb_per_s": round(mib / upload_s, 1),
        "download_mb_per_s": round(mib / download_s, 1),
        "dedup_links_ms": round(links_ms, 1),
        "blobs_on_disk": blobs,
        "collector_rss_before_mib": round(rss_before / 1024, 1),
        "collector_rss_peak_mib": round(rss_peak / 1024, 1),
    }
    console().print(
        table(
            "Artifact upload",
            ["figure", "value"],
            [(k, str(v)) for k, v in result.items() if k not in ("bench", "mode")],
        )
    )
    emit_json(result)


if __name__ == "__main__":
    main()
