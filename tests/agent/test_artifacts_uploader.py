"""The uploader thread against a scripted server: retries, refusals, the token, dedup, changed
files, and finding the API in Redis."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from ledger import wait_until
from test_artifacts_fake_api import FakeArtifactApi

import aquarium.agent as aq
from aquarium.agent import pending_uploads


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArtifactApi]:
    server = FakeArtifactApi().start()
    monkeypatch.setenv("AQUARIUM_API_URL", server.url)
    yield server
    server.stop()


def _run(tmp_path: Path, redis_url: str, run_id: str = "art") -> aq.Run:
    return aq.init(experiment="artifacts", run_id=run_id, redis_url=redis_url, data_dir=tmp_path / "d", commit_wait=0.0)


def _file(tmp_path: Path, name: str = "model.bin", size: int = 3 * (1 << 20) + 17) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _records(run: aq.Run) -> list[pending_uploads.PendingUpload]:
    return [r for _, r in pending_uploads.read_all(run.settings.spool_dir)[0]]


def test_an_upload_is_hashed_linked_and_streamed(tmp_path: Path, redis_url: str, api: FakeArtifactApi) -> None:
    path = _file(tmp_path)
    run = _run(tmp_path, redis_url)
    record = run.log_model(path, framework="pytorch")
    report = run.finish(timeout=30)
    assert (report.artifacts_logged, report.artifacts_uploaded, report.artifacts_pending) == (1, 1, 0)
    data = path.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    assert api.blobs[sha] == data
    assert api.completed[(run.id, record.upload)] == (sha, len(data), False)
    link, put = api.requests("link")[0], api.requests("content")[0]
    assert link.body == {"sha256": sha, "size": len(data), "changed": False}
    assert put.headers["Content-Length"] == str(len(data)) and put.headers["X-Aquarium-Sha256"] == sha
    assert "X-Aquarium-Changed" not in put.headers and "Authorization" not in put.headers
    assert _records(run) == []  # the pending record is gone once the upload completed
    assert run.stats.artifact_bytes_uploaded == len(data)


def test_retries_through_5xx_and_an_unknown_run_then_succeeds(
    tmp_path: Path, redis_url: str, api: FakeArtifactApi
) -> None:
    api.faults["link"].extend([(503, "busy"), (404, "run_not_found"), (500, "bug")])
    api.faults["content"].extend([(502, "gateway")])
    path = _file(tmp_path, size=1000)
    run = _run(tmp_path, redis_url)
    upload = run.log_artifact(path).upload
    report = run.finish(timeout=30)
    assert report.artifacts_uploaded == 1 and report.artifacts_failed == 0
    assert {s.upload for s in api.seen} == {upload}  # the faults above were all answered to this upload
    assert len(api.requests("link", upload)) == 5  # 3 failures, the blob_missing answer, the link after the 502
    assert len(api.requests("content", upload)) == 2
    assert api.blobs[hashlib.sha256(path.read_bytes()).hexdigest()] == path.read_bytes()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_collector_that_comes_up_later_gets_the_upload(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    port = _free_port()
    monkeypatch.setenv("AQUARIUM_API_URL", f"http://127.0.0.1:{port}")
    path = _file(tmp_path, size=5000)
    run = _run(tmp_path, redis_url)
    with caplog.at_level(logging.WARNING, logger="aquarium.agent.uploader"):
        run.log_artifact(path, name="data/x.bin")
        wait_until(lambda: "not uploaded yet" in caplog.text, "a failed connection attempt")
    server = FakeArtifactApi(port=port).start()
    try:
        report = run.finish(timeout=30)
        assert report.artifacts_uploaded == 1
        assert server.blobs[hashlib.sha256(path.read_bytes()).hexdigest()] == path.read_bytes()
    finally:
        server.stop()


def test_too_large_is_failed_for_good_and_not_retried(
    tmp_path: Path, redis_url: str, api: FakeArtifactApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.max_bytes = 4 << 20
    path = _file(tmp_path, size=64 << 20)  # sent in 1 MiB pieces: the early 413 stops the sending
    run = _run(tmp_path, redis_url)
    with caplog.at_level(logging.ERROR, logger="aquarium.agent.uploader"):
        record = run.log_artifact(path)
        report = run.finish(timeout=30)
    assert (report.artifacts_failed, report.artifacts_uploaded, report.artifacts_pending) == (1, 0, 0)
    assert len(api.requests("content", record.upload)) == 1  # never retried
    assert "too_large" in caplog.text and "model.bin" in caplog.text
    (kept,) = _records(run)  # kept, with the reason, for a later `aquarium sync`
    assert kept.upload == record.upload and kept.failed is not None and "too_large" in kept.failed
    assert run.stats.artifacts_failed == 1 and run.stats.artifacts_pending == 0


def test_a_bad_request_is_failed_for_good(tmp_path: Path, redis_url: str, api: FakeArtifactApi) -> None:
    api.faults["link"].append((400, "bad_request"))
    run = _run(tmp_path, redis_url)
    upload = run.log_artifact(_file(tmp_path, size=10)).upload
    report = run.finish(timeout=30)
    assert report.artifacts_failed == 1 and report.artifacts_uploaded == 0
    assert len(api.requests("link", upload)) == 1 and not api.requests("content", upload)


def test_the_token_is_sent_and_a_wrong_one_fails(
    tmp_path: Path, redis_url: str, api: FakeArtifactApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    api.token = "s3cret"
    monkeypatch.setenv("AQUARIUM_API_TOKEN", "wrong")
    run = _run(tmp_path, redis_url, "wrong-token")
    run.log_artifact(_file(tmp_path, "a.bin", 10))
    assert run.finish(timeout=30).artifacts_failed == 1
    monkeypatch.setenv("AQUARIUM_API_TOKEN", "s3cret")
    run = _run(tmp_path, redis_url, "right-token")
    run.log_artifact(_file(tmp_path, "b.bin", 10))
    assert run.finish(timeout=30).artifacts_uploaded == 1
    assert api.requests("content")[-1].headers["Authorization"] == "Bearer s3cret"


def test_the_same_bytes_are_sent_once(tmp_path: Path, redis_url: str, api: FakeArtifactApi) -> None:
    path = _file(tmp_path, size=2 << 20)
    for run_id in ("first", "second"):
        run = _run(tmp_path, redis_url, run_id)
        run.log_model(path)
        assert run.finish(timeout=30).artifacts_uploaded == 1
    assert len(api.requests("content")) == 1 and len(api.requests("link")) == 2  # blob_missing, then 200
    assert {run for run, _ in api.completed} == {"first", "second"}


def test_a_file_changed_after_the_call_is_uploaded_marked_changed(
    tmp_path: Path, redis_url: str, api: FakeArtifactApi, caplog: pytest.LogCaptureFixture
) -> None:
    api.faults["link"].extend([(503, "busy")] * 10_000)  # hold the upload until the file changed
    path = _file(tmp_path, size=4096)
    run = _run(tmp_path, redis_url)
    with caplog.at_level(logging.WARNING, logger="aquarium.agent.uploader"):
        record = run.log_artifact(path)
        assert api.wait_for(lambda: len(api.seen) >= 1)  # hashed the old bytes and tried
        path.write_bytes(b"new bytes, another size")
        api.faults["link"].clear()
        report = run.finish(timeout=30)
    assert report.artifacts_uploaded == 1
    sha = hashlib.sha256(b"new bytes, another size").hexdigest()
    assert api.completed[(run.id, record.upload)] == (sha, 23, True)
    assert api.requests("content")[-1].headers["X-Aquarium-Changed"] == "1"
    assert api.requests("link")[-1].body["changed"] is True
    assert "changed after it was logged" in caplog.text and str(path) in caplog.text


def test_the_api_url_is_found_in_redis_once_a_collector_publishes_it(
    tmp_path: Path, redis_url: str, client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    server = FakeArtifactApi().start()
    try:
        run = _run(tmp_path, redis_url)
        with caplog.at_level(logging.WARNING, logger="aquarium.agent.uploader"):
            run.log_artifact(_file(tmp_path, size=100))
            wait_until(lambda: "aquarium:api" in caplog.text, "the agent looked for the API in Redis")
        client.hset("aquarium:api", "url", server.url)
        assert run.finish(timeout=30).artifacts_uploaded == 1
        assert len(server.requests("content")) == 1
    finally:
        server.stop()


def test_offline_runs_leave_every_upload_to_sync(tmp_path: Path, api: FakeArtifactApi) -> None:
    run = aq.init(experiment="artifacts", mode="offline", data_dir=tmp_path / "d")
    record = run.log_artifact(_file(tmp_path, size=100), meta={"epoch": 3})
    report = run.finish(timeout=5)
    assert (report.artifacts_logged, report.artifacts_pending, report.artifacts_uploaded) == (1, 1, 0)
    assert not api.seen
    (kept,) = _records(run)
    assert kept.upload == record.upload and kept.size == 100 and kept.failed is None
    raw = json.loads(pending_uploads.record_path(run.settings.spool_dir, record.upload).read_text())
    assert raw["run"] == run.id and raw["path"] == str((tmp_path / "model.bin").resolve())


def test_an_unwritable_spool_dir_still_uploads_from_memory(
    tmp_path: Path, redis_url: str, api: FakeArtifactApi, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the spool dir's parent should be")
    path = _file(tmp_path, size=100)
    run = aq.init(
        experiment="artifacts", redis_url=redis_url, spool_dir=str(blocker / "spool"), data_dir=tmp_path / "d",
        commit_wait=0.0,
    )  # fmt: skip
    with caplog.at_level(logging.WARNING, logger="aquarium.agent"):
        run.log_artifact(path)
        report = run.finish(timeout=30)
    assert report.artifacts_uploaded == 1
    assert "could not save its upload record" in caplog.text and "lost if the process ends first" in caplog.text
    assert api.blobs[hashlib.sha256(path.read_bytes()).hexdigest()] == path.read_bytes()
