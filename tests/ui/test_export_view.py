"""The Export view enqueues real RQ jobs, shows their progress and the kept/not-kept report,
and escapes whatever names it shows. A burst SimpleWorker runs the jobs on a real redis-server."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from batches import make_batch
from rq import SimpleWorker

from aquarium.collector import Store
from aquarium.ui.views.exports import ExportView, report_html
from aquarium.workers import export_queue

HOSTILE = "<img src=x onerror=alert(1)>"


@pytest.fixture
def source(tmp_path: Path) -> Path:
    path = tmp_path / "source"
    with Store(path) as store:
        store.ingest(
            [
                make_batch(0, list(range(50)), [float(s) for s in range(50)], run="r1", meta={"name": HOSTILE}),
                make_batch(0, [0, 1], [0.5, 0.25], run="r2", meta={"name": "beta"}),
            ]
        )
    return path


@pytest.fixture
def connection(redis_url: str) -> Iterator[redis.Redis]:
    r = redis.Redis.from_url(redis_url)
    yield r
    r.close()


def work(connection: redis.Redis) -> None:
    SimpleWorker([export_queue(connection)], connection=connection).work(burst=True)


def test_export_without_a_selection_says_so_and_enqueues_nothing(connection: redis.Redis, source: Path) -> None:
    view = ExportView(connection, str(source))
    assert view.export("json", {"out": "unused"}) == []
    assert "Select at least one run" in view._message.object
    assert export_queue(connection).count == 0


def test_a_json_export_reaches_100_percent_and_the_file_holds_the_points(
    connection: redis.Redis, source: Path, tmp_path: Path
) -> None:
    view = ExportView(connection, str(source), run_ids=["r1", "r2"])
    out = tmp_path / "out"
    jobs = view.export("json", {"out": str(out)})
    assert len(jobs) == 2 and export_queue(connection).count == 2
    assert all("queued" in row.state.object for row in view._rows)
    again = view.export("json", {"out": str(out)})  # the same request while queued: the same jobs
    assert [j.id for j in again] == [j.id for j in jobs] and len(view._rows) == 2
    work(connection)
    view.poll()
    assert all(row.finished and row.bar.value == 100 for row in view._rows)
    assert all("finished" in row.state.object for row in view._rows)
    document = json.loads((out / "r1.json").read_text())
    assert len(document["series"][0]["points"]) == 50
    details = next(row.details.object for row in view._rows if row.job.meta["run"] == "r1")
    assert "points" in details and "50" in details


def test_a_failed_job_shows_its_reason(connection: redis.Redis, source: Path) -> None:
    view = ExportView(connection, str(source), run_ids=["no-such-run"])
    view.export("json", {"out": "/tmp"})
    work(connection)
    view.poll()
    (row,) = view._rows
    assert row.finished and "failed" in row.state.object
    assert "no-such-run" in row.details.object


def test_names_in_the_report_and_the_selection_are_escaped(connection: redis.Redis, source: Path) -> None:
    view = ExportView(connection, str(source), run_ids=[HOSTILE])
    assert HOSTILE not in view._selection.object and "&lt;img" in view._selection.object
    report = {
        "target": "json",
        "run": HOSTILE,
        "destination": HOSTILE,
        "fields": {"params": {"kept": 1, "not_kept": 1}},
        "notes": [
            {"field": "params", "what": HOSTILE, "how": "dropped", "count": 1, "kept": False, "examples": [HOSTILE]}
        ],
    }
    text = report_html(report)
    assert "<img" not in text and text.count("&lt;img") == 3
