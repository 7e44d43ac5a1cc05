"""log_artifact / log_model / log_figure at the call: what they refuse (leaving nothing behind),
the record they put in the batch stream, figures from real matplotlib and PIL, the seed API."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from test_artifacts_fake_api import FakeArtifactApi

import aquarium.agent as aq
from aquarium.agent import ExperimentTracker, pending_uploads
from aquarium.agent.errors import InvalidNameError, InvalidValueError, RunFinishedError
from aquarium.agent.redis_keys import BATCH_FIELD, RedisKeys
from aquarium.agent.spool import read_valid, spool_files
from aquarium.agent.wire import ArtifactRecord, Batch, unpack_batch


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeArtifactApi]:
    server = FakeArtifactApi().start()
    monkeypatch.setenv("AQUARIUM_API_URL", server.url)
    yield server
    server.stop()


def _offline(tmp_path: Path) -> aq.Run:
    return aq.init(experiment="calls", mode="offline", data_dir=tmp_path / "d")


def _spooled_batches(run: aq.Run) -> list[Batch]:
    return [b for path in spool_files(run.settings.spool_dir) for b in read_valid(path).batches]


class _NotAFigure:
    def plot(self) -> None: ...


class _BrokenFigure:
    def savefig(self, path: str, format: str) -> None:
        Path(path).write_bytes(b"half")
        raise RuntimeError("the renderer crashed")


def _bad_calls(tmp_path: Path) -> dict[str, tuple[Callable[[aq.Run], object], type[Exception], str]]:
    good = tmp_path / "good.bin"
    good.write_bytes(b"x")
    folder = tmp_path / "folder"
    folder.mkdir()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    dangling = tmp_path / "dangling"
    dangling.symlink_to(tmp_path / "nowhere")
    return {
        "missing file": (lambda r: r.log_artifact(tmp_path / "nope.bin"), InvalidValueError, "no such file"),
        "dangling symlink": (lambda r: r.log_artifact(dangling), InvalidValueError, "no such file"),
        "directory": (lambda r: r.log_artifact(folder), InvalidValueError, "is a directory"),
        "directory, named": (lambda r: r.log_artifact(folder, name="f"), InvalidValueError, "is a directory"),
        "fifo": (lambda r: r.log_artifact(fifo), InvalidValueError, "not a regular file"),
        "path type": (lambda r: r.log_artifact(42), InvalidValueError, "str or os.PathLike"),
        "parent dir": (lambda r: r.log_artifact(good, name="../x"), InvalidNameError, "'..'"),
        "absolute": (lambda r: r.log_artifact(good, name="/abs"), InvalidNameError, "absolute"),
        "NUL": (lambda r: r.log_artifact(good, name="a\x00b"), InvalidNameError, "NUL"),
        "reserved": (lambda r: r.log_artifact(good, name="logs/con.txt"), InvalidNameError, "reserved"),
        "backslash": (lambda r: r.log_artifact(good, name="a\\b"), InvalidNameError, "backslash"),
        "empty": (lambda r: r.log_artifact(good, name=""), InvalidNameError, "empty"),
        "float step": (lambda r: r.log_artifact(good, step=1.5), InvalidValueError, "integer"),  # type: ignore[arg-type]
        "meta type": (lambda r: r.log_artifact(good, meta=[1, 2]), InvalidValueError, "mapping"),  # type: ignore[arg-type]
        "meta too big": (
            lambda r: r.log_artifact(good, meta={f"k{i}": "v" * 1000 for i in range(100)}),
            InvalidValueError,
            "limit is 65536",
        ),
        "framework": (lambda r: r.log_model(good, framework=""), InvalidNameError, "framework"),
        "figure object": (lambda r: r.log_figure(_NotAFigure(), "f.png"), InvalidValueError, "is not a figure"),
        "figure name": (lambda r: r.log_figure(_NotAFigure(), "../f.png"), InvalidNameError, "'..'"),
        "figure crash": (lambda r: r.log_figure(_BrokenFigure(), "f.png"), InvalidValueError, "renderer crashed"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file", "dangling symlink", "directory", "directory, named", "fifo", "path type", "parent dir",
        "absolute", "NUL", "reserved", "backslash", "empty", "float step", "meta type", "meta too big", "framework",
        "figure object", "figure name", "figure crash",
    ],
)  # fmt: skip
def test_bad_calls_raise_and_leave_nothing_behind(tmp_path: Path, case: str) -> None:
    call, error, named = _bad_calls(tmp_path)[case]
    run = _offline(tmp_path)
    with pytest.raises(error, match=named):
        call(run)
    run.log({"x": 1.0}, step=0)  # the run is fine afterwards
    report = run.finish()
    assert report.artifacts_logged == 0 and run.stats.artifacts_logged == 0
    assert not any(b.artifacts for b in _spooled_batches(run))
    uploads = pending_uploads.uploads_dir(run.settings.spool_dir)
    left = (
        [p for p in uploads.rglob("*") if p.is_file() and not p.name.startswith(".owner-")] if uploads.exists() else []
    )
    assert left == []  # no pending record, no half-rendered figure


def test_nothing_can_be_logged_after_finish(tmp_path: Path) -> None:
    run = _offline(tmp_path)
    run.finish()
    good = tmp_path / "a.bin"
    good.write_bytes(b"a")
    with pytest.raises(RunFinishedError):
        run.log_artifact(good)


def test_a_symlink_is_followed_and_the_name_defaults_to_the_basename(tmp_path: Path) -> None:
    target = tmp_path / "real" / "weights.pt"
    target.parent.mkdir()
    target.write_bytes(b"w" * 10)
    link = tmp_path / "latest.pt"
    link.symlink_to(target)
    run = _offline(tmp_path)
    record = run.log_model(link, framework="pytorch", step=7, meta={"opt": {"lr": 0.1}})
    run.finish()
    assert (record.name, record.kind, record.size, record.step) == ("latest.pt", "model", 10, 7)
    assert record.framework == "pytorch" and record.meta == {"opt.lr": 0.1}
    ((_, kept),) = pending_uploads.read_all(run.settings.spool_dir)[0]
    assert kept.path == str(target.resolve()) and kept.name == "latest.pt"


def test_the_record_ships_in_a_batch_in_order_with_the_metrics(
    tmp_path: Path, redis_url: str, client: redis.Redis, api: FakeArtifactApi
) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.bin"
    first.write_text("x,y\n1,2\n")
    second.write_bytes(b"\0" * 100)
    run = aq.init(experiment="calls", run_id="ships", redis_url=redis_url, data_dir=tmp_path / "d", commit_wait=0.0)
    for step in range(10):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    assert run.flush()
    a = run.log_artifact(first, name="tables/a.csv", step=9, meta={"rows": 1})
    run.log({"loss": 0.01}, step=10)
    b = run.log_artifact(second)
    run.finish(timeout=30)
    batches = [unpack_batch(fields[BATCH_FIELD.encode()]) for _, fields in client.xrange(RedisKeys().stream)]
    batches.sort(key=lambda b: b.id.seq)
    records = [(b.id.seq, r) for b in batches for r in b.artifacts]
    assert [r for _, r in records] == [a, b]
    assert records[0][0] > min(b.id.seq for b in batches if b.metrics)  # after the first flush's batch
    assert a == ArtifactRecord(a.upload, "tables/a.csv", "file", 8, a.time, 9, None, "text/csv", {"rows": 1})
    assert b.media_type == "application/octet-stream" and b.name == "b.bin"


def test_many_large_records_split_across_batches(tmp_path: Path) -> None:
    good = tmp_path / "g.bin"
    good.write_bytes(b"g")
    run = _offline(tmp_path)
    meta = {f"k{i}": "v" * 600 for i in range(100)}  # ~60 KiB a record: 40 of them exceed one batch
    logged = [run.log_artifact(good, name=f"g{i}.bin", meta=meta) for i in range(40)]
    run.finish()
    batches = sorted(_spooled_batches(run), key=lambda b: b.id.seq)
    assert [r for b in batches for r in b.artifacts] == logged
    assert sum(1 for b in batches if b.artifacts) >= 3


def test_a_matplotlib_figure_is_rendered_at_the_call(tmp_path: Path, redis_url: str, api: FakeArtifactApi) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots()
    ax.plot([1, 2, 3], [3, 1, 2])
    run = aq.init(experiment="calls", run_id="mpl", redis_url=redis_url, data_dir=tmp_path / "d", commit_wait=0.0)
    png = run.log_figure(fig, "plots/curve.png", step=3)
    svg = run.log_figure(fig, "plots/curve.svg")
    ax.plot([0, 1], [0, 1])  # drawing on afterwards changes nothing that was logged
    plt.close(fig)
    report = run.finish(timeout=30)
    assert report.artifacts_uploaded == 2
    assert (png.kind, png.media_type, png.step) == ("figure", "image/png", 3)
    assert svg.media_type == "image/svg+xml"
    png_bytes = _stored(api, run.id, png.upload)
    assert png_bytes.startswith(b"\x89PNG\r\n\x1a\n") and len(png_bytes) == png.size
    assert b"<svg" in _stored(api, run.id, svg.upload)
    files = pending_uploads.uploads_dir(run.settings.spool_dir) / pending_uploads.FILES
    assert list(files.iterdir()) == []  # rendered files go once uploaded


def test_a_pil_image_is_rendered_in_the_format_of_its_name(
    tmp_path: Path, redis_url: str, api: FakeArtifactApi
) -> None:
    from PIL import Image

    image = Image.new("RGB", (32, 16), (200, 10, 10))
    run = aq.init(experiment="calls", run_id="pil", redis_url=redis_url, data_dir=tmp_path / "d", commit_wait=0.0)
    jpg = run.log_figure(image, "samples/red.jpg")
    png = run.log_figure(image, "samples/red")  # no extension: PNG
    assert run.finish(timeout=30).artifacts_uploaded == 2
    assert jpg.media_type == "image/jpeg" and _stored(api, run.id, jpg.upload).startswith(b"\xff\xd8\xff")
    assert png.media_type == "image/png" and _stored(api, run.id, png.upload).startswith(b"\x89PNG")
    import io

    assert Image.open(io.BytesIO(_stored(api, run.id, png.upload))).size == (32, 16)


def test_an_unknown_figure_format_is_refused_at_the_call(tmp_path: Path) -> None:
    from PIL import Image

    run = _offline(tmp_path)
    with pytest.raises(InvalidValueError, match="'nope'"):
        run.log_figure(Image.new("L", (4, 4)), "x.nope")
    assert run.finish().artifacts_logged == 0


def _stored(api: FakeArtifactApi, run: str, upload: str) -> bytes:
    sha, _, _ = api.completed[(run, upload)]
    return api.blobs[sha]


def test_the_seed_tracker_logs_artifacts_and_lists_them_in_its_summary(
    tmp_path: Path, redis_url: str, api: FakeArtifactApi
) -> None:
    from PIL import Image

    model = tmp_path / "model.h5"
    model.write_bytes(b"h5" * 50)
    data = tmp_path / "data.csv"
    data.write_text("a\n1\n")
    tracker = ExperimentTracker(
        "seed", base_dir=tmp_path / "base", redis_url=redis_url, run_id="seed-artifacts", commit_wait=0.0
    )
    tracker.log_metrics({"acc": 0.5})
    tracker.log_model(str(model), framework="tensorflow")
    tracker.log_artifact(str(data), "data.csv")
    tracker.log_figure(Image.new("RGB", (8, 8)), "training_curves.png")
    summary = json.loads(Path(tracker.save_experiment_summary()).read_text())
    tracker.finish()
    listed = {a["name"]: a for a in summary["artifacts"]}
    assert set(listed) == {"model.h5", "data.csv", "training_curves.png"}
    assert listed["model.h5"]["type"] == "model" and listed["model.h5"]["framework"] == "tensorflow"
    assert listed["model.h5"]["size"] == 100 and listed["model.h5"]["path"] == str(model)
    assert listed["data.csv"]["type"] == "file" and listed["training_curves.png"]["type"] == "figure"
    assert tracker.run.stats.artifacts_uploaded == 3
    assert api.blobs[hashlib.sha256(model.read_bytes()).hexdigest()] == model.read_bytes()
