"""Artifacts end to end: agents in subprocesses, a real redis-server and a real
`aquarium collector --http-port` subprocess; read back over the HTTP API, bytes compared.

The agents are given only their Redis URL: they find the API where the collector advertises it.
"""

from __future__ import annotations

import hashlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from ledger import wait_until

from aquarium.agent import pending_uploads
from aquarium.collector import Api

AQUARIUM = [sys.executable, "-P", "-c", "from aquarium.cli import main; main()"]
AGENT = """
import json, sys
import aquarium.agent as aq
spec = json.loads(sys.argv[1])
run = aq.init(experiment="e2e", run_id=spec["run"], rank=spec["rank"], world_size=spec["world"],
              redis_url=spec["redis_url"], data_dir=spec["data_dir"], finish_timeout=spec["timeout"])
for step in range(20):
    run.log({"loss": 1.0 / (step + 1)}, step=step)
for path, name, kind in spec["files"]:
    if kind == "model":
        run.log_model(path, framework="pytorch", name=name)
    else:
        run.log_artifact(path, name=name, step=19)
report = run.finish()
print(json.dumps({"logged": report.artifacts_logged, "uploaded": report.artifacts_uploaded,
                  "pending": report.artifacts_pending, "failed": report.artifacts_failed}), flush=True)
"""


class Collector:
    """`aquarium collector --http-port 0` in the background; its output read by a thread."""

    def __init__(self, redis_url: str, data_dir: Path, cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("AQUARIUM_API_URL", None)
        self.process = subprocess.Popen(
            [*AQUARIUM, "collector", "--redis-url", redis_url, "--data-dir", str(data_dir), "--http-port", "0"],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.output: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self.wait_for(r"API on (http://\S+)").group(1)
        self.wait_for("Ctrl-C stops")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.process.stdout.close()

    def wait_for(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            self.output.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        pytest.fail(f"the collector never printed {pattern!r}:\n{''.join(self.output)}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def collectors() -> Iterator[list[Collector]]:
    started: list[Collector] = []
    yield started
    for collector in started:
        collector.stop()


def _agent(spec: dict[str, Any]) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.pop("AQUARIUM_API_URL", None)
    return subprocess.Popen(
        [sys.executable, "-c", AGENT, json.dumps(spec)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finished(proc: subprocess.Popen[str]) -> dict[str, int]:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    result: dict[str, int] = json.loads(out.strip().splitlines()[-1])
    return result


def _listed(api: str, run: str) -> list[dict[str, Any]]:
    with Api(api) as client:
        return client.artifacts(run)


def _download(api: str, run: str, name: str, dest: Path, rank: int | None = None) -> bytes:
    with Api(api) as client:
        return client.download_artifact(run, name, dest, rank=rank).read_bytes()


def _blobs(data_dir: Path) -> list[Path]:
    return [p for p in (data_dir / "blobs" / "sha256").rglob("*") if p.is_file()]


def test_four_ranks_upload_shared_and_own_files_stored_once(
    tmp_path: Path, redis_url: str, collectors: list[Collector]
) -> None:
    store_dir = tmp_path / "store"
    collector = Collector(redis_url, store_dir, tmp_path)
    collectors.append(collector)
    model = tmp_path / "model.pt"
    model.write_bytes(os.urandom(3 << 20))
    own = []
    for rank in range(4):
        path = tmp_path / f"rank{rank}.bin"
        path.write_bytes(os.urandom(100_000 + rank))
        own.append(path)
    agents = [
        _agent(
            {
                "run": "e2e-ranks",
                "rank": rank,
                "world": 4,
                "redis_url": redis_url,
                "data_dir": str(tmp_path / f"agent{rank}"),
                "timeout": 60,
                "files": [[str(model), "model.pt", "model"], [str(own[rank]), f"own/rank{rank}.bin", "file"]],
            }
        )
        for rank in range(4)
    ]
    for proc in agents:
        assert _finished(proc) == {"logged": 2, "uploaded": 2, "pending": 0, "failed": 0}
    listed = wait_until(
        lambda: (found := _listed(collector.url, "e2e-ranks")) and len(found) == 8 and found,
        "eight artifact records in the store",
    )
    assert {a["state"] for a in listed} == {"stored"}
    assert sorted((a["rank"], a["name"]) for a in listed) == sorted(
        [(r, "model.pt") for r in range(4)] + [(r, f"own/rank{r}.bin") for r in range(4)]
    )
    models = [a for a in listed if a["name"] == "model.pt"]
    assert {a["kind"] for a in models} == {"model"} and {a["framework"] for a in models} == {"pytorch"}
    assert {a["sha256"] for a in models} == {hashlib.sha256(model.read_bytes()).hexdigest()}
    for rank in range(4):
        dest = tmp_path / f"download{rank}"
        assert _download(collector.url, "e2e-ranks", "model.pt", dest, rank) == model.read_bytes()
        assert _download(collector.url, "e2e-ranks", f"own/rank{rank}.bin", dest, rank) == own[rank].read_bytes()
        assert (dest / "own" / f"rank{rank}.bin").is_file()
    with Api(store_dir) as local:  # the same, read from the collector's data dir
        assert len(local.artifacts("e2e-ranks")) == 8
    assert len(_blobs(store_dir)) == 5  # the model once, each rank's own file once


def test_a_pending_upload_survives_the_process_and_sync_completes_it(
    tmp_path: Path, redis_url: str, collectors: list[Collector]
) -> None:
    data = tmp_path / "weights.bin"
    data.write_bytes(os.urandom(2 << 20))
    changed = tmp_path / "notes.txt"
    changed.write_text("before")
    agent_dir = tmp_path / "agent"
    proc = _agent(
        {
            "run": "e2e-later",
            "rank": 0,
            "world": 1,
            "redis_url": redis_url,
            "data_dir": str(agent_dir),
            "timeout": 1,
            "files": [[str(data), "weights.bin", "model"], [str(changed), "notes.txt", "file"]],
        }
    )
    assert _finished(proc) == {"logged": 2, "uploaded": 0, "pending": 2, "failed": 0}  # no collector yet
    records, _ = pending_uploads.read_all(agent_dir / "spool")
    assert sorted(r.name for _, r in records) == ["notes.txt", "weights.bin"]
    changed.write_text("after the process ended")  # sync uploads these bytes, marked changed

    store_dir = tmp_path / "store"
    collector = Collector(redis_url, store_dir, tmp_path)
    collectors.append(collector)
    env = dict(os.environ)
    env.pop("AQUARIUM_API_URL", None)
    sync = subprocess.run(
        [*AQUARIUM, "sync", str(agent_dir / "spool"), "--redis-url", redis_url, "--data-dir", str(store_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert sync.returncode == 0, sync.stdout + sync.stderr
    assert "2 uploaded (1 marked changed), 0 failed" in sync.stdout
    assert pending_uploads.read_all(agent_dir / "spool")[0] == []
    listed = {a["name"]: a for a in _listed(collector.url, "e2e-later")}
    assert listed["weights.bin"]["state"] == "stored" and listed["notes.txt"]["state"] == "changed"
    assert _download(collector.url, "e2e-later", "weights.bin", tmp_path / "got") == data.read_bytes()
    assert _download(collector.url, "e2e-later", "notes.txt", tmp_path / "got") == b"after the process ended"


def test_sync_names_each_upload_it_cannot_complete(tmp_path: Path, redis_url: str) -> None:
    agent_dir = tmp_path / "agent"
    gone = tmp_path / "gone.bin"
    gone.write_bytes(b"soon deleted")
    proc = _agent(
        {
            "run": "e2e-gone",
            "rank": 0,
            "world": 1,
            "redis_url": redis_url,
            "data_dir": str(agent_dir),
            "timeout": 1,
            "files": [[str(gone), "gone.bin", "file"]],
        }
    )
    assert _finished(proc)["pending"] == 1
    gone.unlink()
    sync = subprocess.run(
        [*AQUARIUM, "sync", str(agent_dir / "spool"), "--redis-url", redis_url, "--api-url", "http://127.0.0.1:9",
         "--wait", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sync.returncode == 1
    assert "e2e-gone/gone.bin" in sync.stdout and "removed before it was uploaded" in sync.stdout
    ((_, kept),) = pending_uploads.read_all(agent_dir / "spool")[0]
    assert kept.failed is not None and "file_gone" in kept.failed
