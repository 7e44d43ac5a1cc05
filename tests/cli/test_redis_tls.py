"""`rediss://` end to end: an agent and a collector process talk to a TLS-only Redis port.

The server has a self-signed certificate; every client is given it in the URL
(`?ssl_ca_certs=...`), as a user would for a private CA.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import redis_binary
from test_up import Up

import aquarium.agent as aq
from aquarium.cli.redis_server import RedisServer, free_port
from aquarium.collector import Api


@pytest.fixture
def tls_url(tmp_path: Path) -> Iterator[str]:
    assert shutil.which("openssl"), "the TLS test needs openssl to make a certificate"
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"]
        + ["-addext", "subjectAltName=IP:127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    tls_port = free_port()
    tls = ["--tls-port", str(tls_port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
    server = RedisServer(
        data_dir=tmp_path / "redis", binary=redis_binary(), extra_args=[*tls, "--tls-auth-clients", "no"]
    )
    server.start()  # answers PING on its plain port; the clients below use only the TLS one
    yield f"rediss://127.0.0.1:{tls_port}/0?ssl_ca_certs={cert}"
    server.stop()


def test_an_agent_and_a_collector_over_tls(tls_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    collector = Up("collector", "--redis-url", tls_url, "--data-dir", str(data_dir), "--http-port", "0", cwd=tmp_path)
    try:
        api_url = collector.wait_for(r"API on (http://\S+)").group(1)
        collector.wait_for("Ctrl-C stops")
        with aq.init(experiment="tls", run_id="over-tls", redis_url=tls_url, data_dir=tmp_path / "agent") as run:
            for step in range(200):
                run.log({"loss": float(step)}, step=step)
        assert run.stats.batches_sent >= 1 and run.stats.redis_errors == 0, run.stats
        with Api(api_url) as api:
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and api.search(filter='id == "over-tls"').total == 0:
                time.sleep(0.05)
            assert list(api.series("over-tls", "loss").steps) == list(range(200))
        collector.process.send_signal(signal.SIGTERM)
        assert collector.process.wait(timeout=20) == 0, collector.text()
    finally:
        collector.stop()
