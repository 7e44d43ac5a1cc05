"""`aquarium tail RUN` as a real subprocess, against a real collector while an agent logs: the
lines cover every logged step once, in the backfill and live, and Ctrl-C ends it with exit 0."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path

import redis
from ledger import CollectorThread, start_run, wait_until
from test_up import AQUARIUM, Up

from aquarium.agent.redis_keys import RedisKeys

KEYS = RedisKeys()


class Command(Up):
    """Any `aquarium ARGS` subprocess (``Up`` starts `up`, `collector` or `api`)."""

    def __init__(self, *args: str, cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.process = subprocess.Popen(
            [*AQUARIUM, *args], cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: "queue.Queue[str]" = queue.Queue()
        self.output: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()


def test_tail_prints_every_committed_step_once(tmp_path: Path, redis_url: str, client: redis.Redis) -> None:
    data_dir = tmp_path / "data"
    with CollectorThread(redis_url, data_dir) as collecting:
        run = start_run(redis_url, data_dir / "agent", "tailed", world_size=2)
        other = start_run(redis_url, data_dir / "agent", "tailed", rank=1, world_size=2)
        for step in range(50):  # stored before tail starts: its backfill
            run.log({"loss": 1.0 / (step + 1)}, step=step)
        wait_until(lambda: collecting.collector.stats.points >= 50, "the first points are stored")
        tail = Command("tail", "tailed", "--json", "--redis-url", redis_url, "--data-dir", str(data_dir), cwd=tmp_path)
        try:
            tail.wait_for("following tailed")
            wait_until(
                lambda: dict(client.pubsub_numsub(KEYS.live("tailed")))[KEYS.live("tailed").encode()], "tail subscribed"
            )
            for step in range(50, 300):  # committed while tail follows
                run.log({"loss": 1.0 / (step + 1), "acc": float("nan") if step == 60 else step / 300}, step=step)
                other.log({"loss": 2.0 / (step + 1)}, step=step)
                if step % 50 == 0:
                    time.sleep(0.05)  # several commits
            run.finish()
            other.finish()
            expected = 300 + 250 + 250
            lines: list[dict[str, object]] = []

            def printed() -> int:
                while not tail.lines.empty():
                    line = tail.lines.get()
                    tail.output.append(line)
                    if line.startswith("{"):
                        lines.append(json.loads(line))
                return len(lines)

            wait_until(lambda: printed() >= expected, lambda: f"{len(lines)} of {expected} points printed")
            tail.process.send_signal(signal.SIGINT)
            assert tail.process.wait(timeout=20) == 0, tail.text()
            printed()
        finally:
            tail.stop()
    seen = Counter((line["key"], line["rank"], line["step"]) for line in lines)
    assert max(seen.values()) == 1
    assert set(seen) == (
        {("loss", 0, s) for s in range(300)}
        | {("acc", 0, s) for s in range(50, 300)}
        | {("loss", 1, s) for s in range(50, 300)}
    )
    first = lines[0]
    assert set(first) == {"run", "key", "rank", "step", "value", "time"} and first["run"] == "tailed"
    assert next(line for line in lines if line["key"] == "acc" and line["step"] == 60)["value"] is None
    assert all(isinstance(line["time"], float) and line["time"] > 1.7e9 for line in lines)


def test_tail_over_the_http_api_of_a_collector_process(tmp_path: Path, redis_url: str, client: redis.Redis) -> None:
    """Another machine's view: the backfill over --api, points over Redis; the collector's own
    API streams the same run as Server-Sent Events."""
    data_dir = tmp_path / "data"
    collector = Up("collector", "--redis-url", redis_url, "--data-dir", str(data_dir), "--http-port", "0", cwd=tmp_path)
    tail: Command | None = None
    try:
        api_url = collector.wait_for(r"API on (http://\S+)").group(1)
        collector.wait_for("Ctrl-C stops")
        run = start_run(redis_url, tmp_path / "agent", "remote")
        for step in range(20):
            run.log({"loss": float(step)}, step=step)
        wait_until(lambda: _stored(api_url, "remote") >= 1, "some points are stored")
        tail = Command("tail", "remote", "--api", api_url, "--redis-url", redis_url, cwd=tmp_path)
        tail.wait_for("following remote")
        events = urllib.request.urlopen(f"{api_url}/api/runs/remote/live", timeout=30)
        assert events.headers["Content-Type"].startswith("text/event-stream")
        for step in range(20, 40):
            run.log({"loss": float(step)}, step=step)
        run.finish()
        steps: set[int] = set()
        while len(steps) < 40:  # the SSE stream: backfill, then the commits
            line = events.readline().decode()
            if line.startswith("data: ") and '"steps"' in line:
                steps |= set(json.loads(line[6:])["steps"])
        events.close()
        assert steps == set(range(40))
        printed: list[str] = []

        def lines() -> int:
            while not tail.lines.empty():
                line = tail.lines.get()
                if "\tloss[0]\t" in line:
                    printed.append(line)
            return len(printed)

        wait_until(lambda: lines() >= 40, lambda: f"{len(printed)} of 40 lines printed")
        assert sorted(int(line.split("\t")[0]) for line in printed) == list(range(40))
        tail.process.send_signal(signal.SIGINT)
        assert tail.process.wait(timeout=20) == 0
    finally:
        if tail is not None:
            tail.stop()
        collector.stop()


def _stored(api_url: str, run_id: str) -> int:
    try:
        with urllib.request.urlopen(f"{api_url}/api/runs/{run_id}", timeout=10) as answer:
            return int(json.loads(answer.read())["metrics"].get("loss", {}).get("count", 0))
    except urllib.error.HTTPError:
        return 0
