"""A job reads the run through the HTTP API when its source is a URL: no SQLite access needed."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from aquarium.collector import Store
from aquarium.collector.api import ApiServer, ApiSettings, create_app
from aquarium.workers import enqueue_export, wait_for
from aquarium.workers.progress import MetaProgress


@pytest.fixture
def api_url(source: Path) -> Iterator[str]:
    store = Store(source, read_only=True)
    settings = ApiSettings(port=0)
    with ApiServer(create_app(store, settings), settings) as running:
        yield running.url
    store.close()


def test_json_export_from_the_http_api_equals_the_one_from_the_data_dir(
    source: Path, api_url: str, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    documents = []
    for name, where in (("http", api_url), ("local", str(source))):
        out = tmp_path / f"{name}.json"
        job = enqueue_export(connection, "json", "r1", where, {"out": str(out)})
        work()
        (o,) = wait_for([job])
        assert o.status == "finished", o.error
        assert job.get_meta(refresh=True)["done"] == 507
        documents.append(json.loads(out.read_text()))
    assert documents[0] == documents[1]


class _Job:
    def __init__(self) -> None:
        self.meta: dict[str, object] = {}
        self.saves = 0

    def save_meta(self) -> None:
        self.saves += 1


def test_progress_saves_at_most_twice_a_second_and_always_the_last() -> None:
    now = [0.0]
    job = _Job()
    progress = MetaProgress(job, clock=lambda: now[0])
    for done in range(100):  # 100 updates over one second
        progress(done, 100, "points")
        now[0] += 0.01
    assert job.saves == 2
    progress.finish()
    assert job.saves == 3 and job.meta == {"done": 99, "total": 100, "phase": "points"}
