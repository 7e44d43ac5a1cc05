"""Pending-upload records leave the caller's thread: the call only queues them, the record writer
thread fsyncs them, finish() returns once they are on disk (even a SIGKILL right after it leaves
them for `aquarium sync`), and closing the uploader leaves no thread and no lock behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from ledger import wait_until
from test_artifacts_fake_api import FakeArtifactApi

import aquarium.agent as aq
from aquarium.agent import pending_uploads, record_writer, uploader
from aquarium.agent.api_locator import ApiLocator
from aquarium.agent.upload_sync import complete_uploads

NOWHERE = "http://127.0.0.1:9"  # nothing listens: online uploads keep failing, records stay


class Gate:
    """Stands in for the record fsync: notes the thread of each call, holds it until opened."""

    def __init__(self, real: Callable[[BinaryIO], None]) -> None:
        self.threads: list[int] = []
        self.opened = threading.Event()
        self._real = real

    def __call__(self, f: BinaryIO) -> None:
        self.threads.append(threading.get_ident())
        self.opened.wait(30)
        self._real(f)


@pytest.fixture
def gate(monkeypatch: pytest.MonkeyPatch) -> Iterator[Gate]:
    held = Gate(pending_uploads.fsync_file)
    monkeypatch.setattr(pending_uploads, "fsync_file", held)
    yield held
    held.opened.set()  # never leave the record writer stuck for the teardown


def _file(tmp_path: Path, name: str, size: int = 100) -> Path:
    path = tmp_path / name
    path.write_bytes(os.urandom(size))
    return path


def _on_disk(spool_dir: Path) -> dict[str, pending_uploads.PendingUpload]:
    records, unreadable = pending_uploads.read_all(spool_dir)
    assert unreadable == []
    return {r.upload: r for _, r in records}


def test_the_call_returns_before_the_record_is_fsynced_on_another_thread(tmp_path: Path, gate: Gate) -> None:
    run = aq.init(experiment="records", mode="offline", data_dir=tmp_path / "d")
    record = run.log_artifact(_file(tmp_path, "a.bin"))  # the fsync is held: a call waiting on it would hang
    path = pending_uploads.record_path(run.settings.spool_dir, record.upload)
    wait_until(lambda: gate.threads, "the record writer reached the fsync")
    assert threading.get_ident() not in gate.threads
    assert not path.exists()  # still held in the fsync, which comes before the rename
    gate.opened.set()
    assert run.finish().artifacts_pending == 1
    assert path.exists() and threading.get_ident() not in gate.threads


def test_finish_returns_once_every_record_is_on_disk(
    tmp_path: Path, redis_url: str, gate: Gate, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AQUARIUM_API_URL", NOWHERE)
    drain = record_writer.RecordWriter.drain

    def opening_drain(self: record_writer.RecordWriter, *args: Any) -> bool:
        gate.opened.set()  # the fsyncs go ahead only once someone waits for them
        return drain(self, *args)

    monkeypatch.setattr(record_writer.RecordWriter, "drain", opening_drain)
    run = aq.init(experiment="records", redis_url=redis_url, data_dir=tmp_path / "d", commit_wait=0.0)
    logged = [run.log_artifact(_file(tmp_path, f"f{i}.bin"), name=f"f{i}.bin").upload for i in range(5)]
    assert not gate.opened.is_set() and not _on_disk(run.settings.spool_dir)
    report = run.finish(timeout=0)  # no time for uploads; the records are waited for regardless
    assert report.artifacts_pending == 5
    kept = _on_disk(run.settings.spool_dir)
    assert sorted(kept) == sorted(logged)
    assert {r.owner for r in kept.values()} == {uploader.shared().owner_name(run.settings.spool_dir)}


AGENT = """
import os, signal, sys
import aquarium.agent as aq
mode, data_dir, files = sys.argv[1], sys.argv[2], sys.argv[3:]
run = aq.init(experiment="records", run_id="killed", mode=mode, data_dir=data_dir,
              redis_url=os.environ.get("REDIS_URL", ""), commit_wait=0.0)
for path in files:
    print(run.log_artifact(path).upload, flush=True)
run.finish(timeout=0)
os.kill(os.getpid(), signal.SIGKILL)
"""


@pytest.mark.parametrize("mode", ["online", "offline"])
def test_a_sigkill_right_after_finish_leaves_the_records_for_sync(tmp_path: Path, redis_url: str, mode: str) -> None:
    files = [_file(tmp_path, f"k{i}.bin", 1000 + i) for i in range(3)]
    env = {**os.environ, "AQUARIUM_API_URL": NOWHERE, "REDIS_URL": redis_url}
    proc = subprocess.run(
        [sys.executable, "-c", AGENT, mode, str(tmp_path / "agent"), *map(str, files)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-3000:]
    logged = proc.stdout.split()
    spool = tmp_path / "agent" / "spool"
    assert sorted(_on_disk(spool)) == sorted(logged) and len(logged) == 3
    api = FakeArtifactApi().start()
    try:
        done = complete_uploads(spool, ApiLocator(url=api.url), wait=10)
    finally:
        api.stop()
    assert (done.found, done.uploaded, done.skipped_live, done.failed) == (3, 3, 0, 0)  # its owner is dead
    assert {(s.run, s.upload) for s in api.requests("link")} == {("killed", u) for u in logged}
    assert _on_disk(spool) == {}


def test_closing_the_uploader_stops_its_threads_and_leaves_its_uploads_to_sync(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AQUARIUM_API_URL", NOWHERE)
    run = aq.init(experiment="records", redis_url=redis_url, data_dir=tmp_path / "d", commit_wait=0.0)
    record = run.log_artifact(_file(tmp_path, "c.bin"))
    assert run.finish(timeout=0.2).artifacts_pending == 1  # still retrying in the background
    names = {"aquarium-uploader", "aquarium-upload-records"}
    assert names <= {t.name for t in threading.enumerate()}
    spool = run.settings.spool_dir
    assert list(pending_uploads.uploads_dir(spool).glob(".owner-*"))
    assert uploader.close_shared()
    assert not names & {t.name for t in threading.enumerate()}
    assert not list(pending_uploads.uploads_dir(spool).glob(".owner-*"))  # the lock file went with it
    api = FakeArtifactApi().start()
    try:
        done = complete_uploads(spool, ApiLocator(url=api.url), wait=10)
    finally:
        api.stop()
    assert (done.uploaded, done.skipped_live) == (1, 0) and api.completed.keys() == {(run.id, record.upload)}
