"""`aquarium up` as a user runs it: a subprocess owning a Redis child, stopped by a signal."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from click.testing import CliRunner
from ledger import wait_until

import aquarium.agent as aq
from aquarium.cli import cli
from aquarium.cli.redis_server import free_port

AQUARIUM = [sys.executable, "-P", "-c", "from aquarium.cli import main; main()"]


class Up:
    """A running `aquarium ARGS` (`up` unless told), its output collected by a reader thread."""

    def __init__(self, *args: str, cwd: Path, env: dict[str, str] | None = None) -> None:
        full_env = dict(os.environ, PYTHONUNBUFFERED="1")
        full_env.pop("AQUARIUM_REDIS_URL", None)
        full_env.update(env or {})
        command = list(args) if args and args[0] in ("collector", "api") else ["up", *args]
        self.process = subprocess.Popen(
            [*AQUARIUM, *command], cwd=cwd, env=full_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.process.stdout.close()

    def wait_for(self, pattern: str, timeout: float = 30.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None and self.lines.empty():
                    break
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        pytest.fail(f"`aquarium up` never printed {pattern!r}; output:\n{self.text()}")

    def text(self) -> str:
        self._reader.join(timeout=5)
        while not self.lines.empty():
            self.output.append(self.lines.get())
        return "".join(self.output)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self._reader.join(timeout=5)


@pytest.fixture
def start_up(tmp_path: Path) -> Iterator[type[Up]]:
    started: list[Up] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Up:
        up = Up(*args, cwd=tmp_path, env=env)
        started.append(up)
        return up

    yield start  # type: ignore[misc]
    for up in started:
        up.stop()


def wait_for_points(data_dir: Path, run_id: str, count: int, timeout: float = 20.0) -> dict:
    deadline = time.monotonic() + timeout
    run: dict = {}
    while time.monotonic() < deadline:
        result = CliRunner().invoke(cli, ["show", run_id, "--json", "--data-dir", str(data_dir)])
        if result.exit_code == 0:
            run = json.loads(result.stdout)
            if run["metrics"].get("loss", {}).get("count") == count:
                return run
        time.sleep(0.1)
    pytest.fail(f"run {run_id} never had {count} points stored; last seen: {run}")


def redis_children(pid: int) -> list[psutil.Process]:
    return [p for p in psutil.Process(pid).children(recursive=True) if "redis" in p.name()]


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_up_collects_a_run_and_stops_cleanly(start_up, tmp_path: Path, stop_signal: signal.Signals) -> None:
    data_dir = tmp_path / "data"
    port = free_port()
    up = start_up("--port", str(port), "--data-dir", str(data_dir))
    url = up.wait_for(r"export AQUARIUM_REDIS_URL=(\S+)").group(1)
    assert url == f"redis://127.0.0.1:{port}/0"
    up.wait_for(r"Ctrl-C stops")
    children = psutil.Process(up.process.pid).children(recursive=True)
    assert children, "no Redis child"

    run = aq.init(experiment="up", name="via-up", run_id="up-run", redis_url=url, data_dir=tmp_path / "agent")
    for step in range(100):
        run.log({"loss": float(step)}, step=step)
    run.finish()
    stored = wait_for_points(data_dir, "up-run", 100)
    assert stored["name"] == "via-up" and stored["metrics"]["loss"]["max"] == 99.0

    up.process.send_signal(stop_signal)
    assert up.process.wait(timeout=20) == 0, up.text()
    assert f"stopped ({stop_signal.name})" in up.text()
    for child in children:
        assert not child.is_running(), f"Redis child {child.pid} outlived `aquarium up`"


def test_up_ingests_offline_runs_at_start(start_up, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    run = aq.init(experiment="up", run_id="was-offline", mode="offline", data_dir=data_dir)
    for step in range(10):
        run.log({"loss": 1.0}, step=step)
    run.finish()
    up = start_up("--port", "0", "--data-dir", str(data_dir))
    up.wait_for(r"ingested \d+ spooled batch")
    up.wait_for(r"Ctrl-C stops")
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=20) == 0, up.text()
    wait_for_points(data_dir, "was-offline", 10)


def test_up_on_a_busy_port_says_so(start_up, tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        up = start_up("--port", str(port), "--data-dir", str(tmp_path / "data"))
        assert up.process.wait(timeout=20) == 1
    text = up.text()
    assert f"port {port}" in text and "already in use" in text and "Traceback" not in text


def test_up_with_a_redis_url_starts_no_redis(start_up, redis_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    up = start_up("--data-dir", str(data_dir), env={"AQUARIUM_REDIS_URL": redis_url})
    assert up.wait_for(r"export AQUARIUM_REDIS_URL=(\S+)").group(1) == redis_url
    up.wait_for(r"Ctrl-C stops")
    assert not redis_children(up.process.pid)
    with aq.init(experiment="up", run_id="external", redis_url=redis_url, data_dir=tmp_path / "agent") as run:
        run.log({"loss": 1.0}, step=0)
    wait_for_points(data_dir, "external", 1)
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=20) == 0, up.text()


def test_collector_service_stops_on_sigterm(start_up, redis_url: str, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    collector = start_up("collector", "--redis-url", redis_url, "--data-dir", str(data_dir))
    collector.wait_for(r"Ctrl-C stops")
    with aq.init(experiment="svc", run_id="svc-run", redis_url=redis_url, data_dir=tmp_path / "agent") as run:
        for step in range(50):
            run.log({"loss": float(step)}, step=step)
    wait_for_points(data_dir, "svc-run", 50)
    collector.process.send_signal(signal.SIGTERM)
    assert collector.process.wait(timeout=20) == 0, collector.text()
    assert re.search(r"stored \d+ batch(es)? \(50 points\)", collector.text())


def test_a_killed_up_leaves_no_orphaned_redis(start_up, tmp_path: Path) -> None:
    up = start_up("--port", "0", "--data-dir", str(tmp_path / "data"))
    up.wait_for(r"Ctrl-C stops")
    children = psutil.Process(up.process.pid).children(recursive=True)
    assert redis_children(up.process.pid) and len(children) >= 2  # Redis and the export worker
    up.process.kill()  # SIGKILL: no chance to clean up
    up.process.wait()
    gone, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"children {[p.pid for p in alive]} outlived a SIGKILLed `aquarium up`"


def test_up_on_a_port_where_redis_already_runs_uses_it(start_up, fresh_redis, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    up = start_up("--port", str(fresh_redis.port), "--data-dir", str(data_dir))
    assert up.wait_for(r"export AQUARIUM_REDIS_URL=(\S+)").group(1) == fresh_redis.url
    up.wait_for(r"Ctrl-C stops")
    assert not redis_children(up.process.pid)
    with aq.init(experiment="up", run_id="existing", redis_url=fresh_redis.url, data_dir=tmp_path / "agent") as run:
        run.log({"loss": 2.0}, step=0)
    wait_for_points(data_dir, "existing", 1)
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=20) == 0, up.text()
    assert fresh_redis.process is not None and fresh_redis.process.poll() is None  # not ours to stop


def test_up_starts_an_export_worker_that_runs_jobs_and_stops_with_it(start_up, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    up = start_up("--port", "0", "--data-dir", str(data_dir), "--no-ui", "--no-api")
    pid = int(up.wait_for(r"export worker \(pid (\d+)").group(1))
    url = up.wait_for(r"export AQUARIUM_REDIS_URL=(\S+)").group(1)
    up.wait_for(r"Ctrl-C stops")
    run = aq.init(experiment="up", run_id="to-export", redis_url=url, data_dir=tmp_path / "agent")
    for step in range(20):
        run.log({"loss": float(step)}, step=step)
    run.finish()
    wait_for_points(data_dir, "to-export", 20)
    out = tmp_path / "to-export.json"
    # enqueued only: the worker `up` started runs it
    result = CliRunner().invoke(
        cli,
        ["export", "json", "to-export", "--out", str(out), "--data-dir", str(data_dir), "--redis-url", url],
    )
    assert result.exit_code == 0, result.output
    assert len(json.loads(out.read_text())["series"][0]["points"]) == 20
    worker = psutil.Process(pid)
    up.process.send_signal(signal.SIGINT)
    assert up.process.wait(timeout=30) == 0, up.text()
    assert not worker.is_running() or worker.status() == psutil.STATUS_ZOMBIE


def test_demo_beside_up_logs_a_checkpoint_and_a_figure(start_up, tmp_path: Path) -> None:
    """Under `up` a collector serves the API (and advertises it): the demo's artifacts are uploaded."""
    from PIL import Image

    from aquarium.collector import Api

    data_dir = tmp_path / "data"
    up = start_up("--port", "0", "--data-dir", str(data_dir), "--no-ui", "--no-worker", "--http-port", "0")
    url = up.wait_for(r"export AQUARIUM_REDIS_URL=(\S+)").group(1)
    up.wait_for(r"Ctrl-C stops")
    result = CliRunner().invoke(
        cli, ["demo", "--runs", "1", "--ranks", "2", "--steps", "200", "--redis-url", url, "--data-dir", str(data_dir)]
    )
    assert result.exit_code == 0, result.output
    run_id = re.search(r"(demo-\w+-0)", result.output).group(1)  # type: ignore[union-attr]
    with Api(data_dir) as api:
        wait_until(
            lambda: all(a["state"] == "stored" for a in api.artifacts(run_id)) and api.artifacts(run_id), "stored"
        )
        listed = {a["name"]: a for a in api.artifacts(run_id)}
        assert set(listed) == {"checkpoints/model.pt", "plots/training_loss.png"}
        assert (
            listed["checkpoints/model.pt"]["kind"] == "model"
            and listed["checkpoints/model.pt"]["framework"] == "pytorch"
        )
        figure = listed["plots/training_loss.png"]
        assert figure["kind"] == "figure" and figure["media_type"] == "image/png" and figure["step"] == 199
        png = api.download_artifact(run_id, "plots/training_loss.png", tmp_path / "got")
    with Image.open(png) as image:
        assert image.size == (480, 240)
