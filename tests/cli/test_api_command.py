"""The HTTP API from the command line: `aquarium api`, `aquarium collector --http-port`, `up`.

Real processes: the API answers over real HTTP while a real collector stores a real run.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from batches import make_batch
from click.testing import CliRunner
from test_up import Up

import aquarium.agent as aq
from aquarium.cli import cli
from aquarium.cli.redis_server import free_port
from aquarium.collector import Api, Store

AQUARIUM = [sys.executable, "-P", "-c", "from aquarium.cli import main; main()"]


@pytest.fixture
def started(tmp_path: Path) -> Iterator[list[Up]]:
    processes: list[Up] = []
    yield processes
    for process in processes:
        process.stop()


def test_aquarium_api_serves_a_data_dir(tmp_path: Path, started: list[Up]) -> None:
    data_dir = tmp_path / "data"
    with Store(data_dir) as store:
        store.ingest([make_batch(0, [0, 1, 2], [3.0, 2.0, 1.0], run="served", params={"lr": 0.5})])
    port = free_port()
    api = Up("api", "--data-dir", str(data_dir), "--http-port", str(port), cwd=tmp_path)
    started.append(api)
    api.wait_for(r"API on http://127\.0\.0\.1:\d+")
    with Api(f"http://127.0.0.1:{port}") as client:
        assert list(client.runs(filter="params.lr == 0.5")["id"]) == ["served"]
        assert list(client.series("served", "loss").values) == [3.0, 2.0, 1.0]
    url = f"http://127.0.0.1:{port}"
    listed = CliRunner().invoke(cli, ["ls", "--api", url, "--json", "--filter", "params.lr > 0.1"])
    assert listed.exit_code == 0, listed.output
    assert [run["id"] for run in json.loads(listed.stdout)] == ["served"]
    shown = CliRunner().invoke(cli, ["show", "serv", "--api", url, "--json"])  # an id prefix, over HTTP
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["params"] == {"lr": 0.5}
    missing = CliRunner().invoke(cli, ["show", "nope", "--api", url])
    assert missing.exit_code == 1 and "nope" in missing.output
    api.process.send_signal(signal.SIGINT)
    assert api.process.wait(timeout=20) == 0, api.text()


def test_a_public_address_without_a_token_is_refused(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    Store(data_dir).close()
    result = subprocess.run(
        [*AQUARIUM, "api", "--data-dir", str(data_dir), "--http-host", "0.0.0.0", "--http-port", str(free_port())],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1 and "AQUARIUM_API_TOKEN" in result.stderr and "Traceback" not in result.stderr


def test_the_collector_serves_live_data_and_its_counters(tmp_path: Path, redis_url: str, started: list[Up]) -> None:
    data_dir = tmp_path / "data"
    collector = Up("collector", "--redis-url", redis_url, "--data-dir", str(data_dir), "--http-port", "0", cwd=tmp_path)
    started.append(collector)
    url = collector.wait_for(r"API on (http://\S+)").group(1)
    collector.wait_for("Ctrl-C stops")
    with aq.init(experiment="api", run_id="live", redis_url=redis_url, data_dir=tmp_path / "agent") as run:
        for step in range(500):
            run.log({"loss": 1.0 / (step + 1)}, step=step)
    with Api(url) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(_points(client)) < 500:
            time.sleep(0.05)
        assert len(_points(client)) == 500
    metrics = urllib.request.urlopen(f"{url}/metrics", timeout=10).read().decode()
    stored = next(line for line in metrics.splitlines() if line.startswith("aquarium_points_stored_total "))
    assert int(stored.split()[1]) == 500
    assert "aquarium_stream_pending_entries 0" in metrics
    collector.process.send_signal(signal.SIGTERM)
    assert collector.process.wait(timeout=20) == 0, collector.text()


def _points(client: Api) -> list[int]:
    try:
        return list(client.series("live", "loss").steps)
    except aq.RunNotFoundError:
        return []


def test_up_serves_the_api(tmp_path: Path, started: list[Up]) -> None:
    data_dir = tmp_path / "data"
    up = Up("--port", "0", "--data-dir", str(data_dir), cwd=tmp_path)
    started.append(up)
    api_url = up.wait_for(r"API on (http://\S+)").group(1)
    redis_url = up.wait_for(r"export AQUARIUM_REDIS_URL=(\S+)").group(1)
    up.wait_for("Ctrl-C stops")
    with aq.init(experiment="up", run_id="via-up-api", redis_url=redis_url, data_dir=tmp_path / "agent") as run:
        run.log({"loss": 1.0}, step=0)
    with Api(api_url) as client:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and client.search(filter='id == "via-up-api"').total == 0:
            time.sleep(0.05)
        assert client.run("via-up-api")["metrics"]["loss"]["count"] == 1
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=20) == 0, up.text()
