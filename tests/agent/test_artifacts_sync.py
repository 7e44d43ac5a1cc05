"""What is left for later: finish() says so, sync leaves a live agent's uploads to it, and the
uploader speaks https (verified against the system's or SSL_CERT_FILE's certificates)."""

from __future__ import annotations

import hashlib
import logging
import shutil
import subprocess
from pathlib import Path

import pytest
from test_artifacts_fake_api import FakeArtifactApi

import aquarium.agent as aq
from aquarium.agent import pending_uploads
from aquarium.agent.api_locator import ApiLocator
from aquarium.agent.upload_sync import complete_uploads


def test_finish_names_aquarium_sync_when_uploads_are_left(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "a.bin"
    path.write_bytes(b"a" * 10)
    run = aq.init(experiment="later", mode="offline", data_dir=tmp_path / "d")
    run.log_artifact(path)
    with caplog.at_level(logging.WARNING, logger="aquarium.agent.run"):
        report = run.finish()
    assert report.artifacts_pending == 1
    (line,) = [r.getMessage() for r in caplog.records if "artifacts are not uploaded" in r.getMessage()]
    assert "`aquarium sync`" in line and "1 of 1" in line and "\n" not in line
    api = FakeArtifactApi().start()
    try:
        done = complete_uploads(run.settings.spool_dir, ApiLocator(url=api.url), wait=10)
    finally:
        api.stop()
    assert (done.uploaded, done.failed) == (1, 0)
    assert api.blobs[hashlib.sha256(b"a" * 10).hexdigest()] == b"a" * 10
    assert pending_uploads.read_all(run.settings.spool_dir) == ([], [])


def test_sync_leaves_the_uploads_of_a_live_agent_to_it(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AQUARIUM_API_URL", "http://127.0.0.1:9")  # nothing listens: the agent keeps retrying
    path = tmp_path / "b.bin"
    path.write_bytes(b"b")
    run = aq.init(experiment="later", redis_url=redis_url, data_dir=tmp_path / "d", commit_wait=0.0)
    run.log_artifact(path)
    assert run.finish(timeout=0.5).artifacts_pending == 1
    api = FakeArtifactApi().start()
    try:
        done = complete_uploads(run.settings.spool_dir, ApiLocator(url=api.url), wait=0)
    finally:
        api.stop()
    assert (done.skipped_live, done.uploaded, done.found) == (1, 0, 0) and not api.seen


def test_a_corrupt_record_is_reported_not_fatal(tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    pending_uploads.uploads_dir(spool).mkdir(parents=True)
    (pending_uploads.uploads_dir(spool) / "broken.json").write_text("{not json")
    done = complete_uploads(spool, ApiLocator(url="http://127.0.0.1:9"), wait=0)
    assert done.failed == 1 and "broken.json" in done.problems[0] and "not an upload record" in done.problems[0]


def test_uploads_over_https(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert shutil.which("openssl"), "the TLS test needs openssl to make a certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    api = FakeArtifactApi(tls=(str(cert), str(key))).start()
    try:
        monkeypatch.setenv("AQUARIUM_API_URL", api.url)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))  # trusted: the certificate is its own CA
        data = tmp_path / "tls.bin"
        data.write_bytes(bytes(range(256)) * 10_000)
        run = aq.init(experiment="tls", redis_url=redis_url, data_dir=tmp_path / "d", commit_wait=0.0)
        run.log_artifact(data)
        assert run.finish(timeout=30).artifacts_uploaded == 1
        assert api.blobs[hashlib.sha256(data.read_bytes()).hexdigest()] == data.read_bytes()
        assert api.url.startswith("https://")
    finally:
        api.stop()
