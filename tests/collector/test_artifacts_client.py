"""``Api.artifacts`` and ``Api.download_artifact``, from a data dir and from a served HTTP API:
the same answers, files written under the destination only, checked against their sha256."""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from batches import make_batch

from aquarium.agent.errors import RunNotFoundError
from aquarium.agent.wire import ArtifactRecord, Batch, BatchId
from aquarium.collector import Api, Store
from aquarium.collector.api import ApiServer, ApiSettings, create_app
from aquarium.collector.blobs import BlobStore, OversizedUploadError
from aquarium.collector.client import DownloadError
from aquarium.collector.store import ArtifactNotFoundError, ArtifactPendingError

DATA = os.urandom(50_000)


def put_blob(store: Store, data: bytes) -> str:
    """Store ``data`` as the PUT route does (BlobWriter), and return its sha256."""
    digest = hashlib.sha256(data).hexdigest()
    with BlobStore(store.data_dir).writer(digest, len(data)) as writer:
        writer.write(data)
        writer.commit()
    return digest


@pytest.fixture
def filled(store: Store) -> Store:
    """Run r1: ``ckpt/model.pt`` stored (rank 0 and 1), ``later.bin`` pending."""
    stored = [ArtifactRecord(uuid.uuid4().hex, "ckpt/model.pt", "model", len(DATA), 1.7e9 + r) for r in range(2)]
    pending = ArtifactRecord(uuid.uuid4().hex, "later.bin", "file", 3, 1.8e9)
    store.ingest(
        [make_batch(0, [0], [1.0])]
        + [Batch(BatchId("r1", r, "inc-a", 1), artifacts=[stored[r]]) for r in range(2)]
        + [Batch(BatchId("r1", 0, "inc-a", 2), artifacts=[pending])]
    )
    digest = put_blob(store, DATA)
    for rec in stored:
        store.complete_upload("r1", rec.upload, digest, len(DATA), False)
    return store


@pytest.fixture(params=["data dir", "http"])
def api(request: pytest.FixtureRequest, filled: Store) -> Iterator[Api]:
    if request.param == "data dir":
        with Api(filled.data_dir) as local:
            yield local
        return
    settings = ApiSettings(port=0)
    with ApiServer(create_app(filled, settings), settings) as server, Api(server.url) as remote:
        yield remote


def test_artifacts_are_listed_the_same_from_both(api: Api, filled: Store) -> None:
    listed = api.artifacts("r1")
    assert listed == filled.artifacts("r1")
    assert [(a["name"], a["rank"], a["state"]) for a in listed] == [
        ("ckpt/model.pt", 0, "stored"),
        ("ckpt/model.pt", 1, "stored"),
        ("later.bin", 0, "pending"),
    ]


def test_a_download_is_written_under_dest_with_the_same_sha256(api: Api, tmp_path: Path) -> None:
    path = api.download_artifact("r1", "ckpt/model.pt", tmp_path / "out")
    assert path == (tmp_path / "out" / "ckpt" / "model.pt").resolve()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert api.download_artifact("r1", "ckpt/model.pt", tmp_path / "rank1", rank=1).read_bytes() == DATA
    assert [p.name for p in path.parent.iterdir()] == ["model.pt"]  # no temporary file left


def test_missing_pending_and_unknown_raise_what_a_local_read_raises(api: Api, tmp_path: Path) -> None:
    tmp_path = tmp_path / "out"
    with pytest.raises(ArtifactPendingError):
        api.download_artifact("r1", "later.bin", tmp_path)
    with pytest.raises(ArtifactNotFoundError):
        api.download_artifact("r1", "nothing.bin", tmp_path)
    with pytest.raises(ArtifactNotFoundError):
        api.download_artifact("r1", "ckpt/model.pt", tmp_path, rank=7)
    with pytest.raises(RunNotFoundError):
        api.artifacts("nope")
    with pytest.raises(RunNotFoundError):
        api.download_artifact("nope", "a", tmp_path)
    assert list(tmp_path.iterdir()) == []
    assert api.artifacts("r1")  # the kept-alive connection still answers after the errors


@pytest.mark.parametrize("name", ["../escape.txt", "/etc/passwd", "a/../../b"])
def test_a_name_that_would_leave_dest_is_refused(api: Api, tmp_path: Path, name: str) -> None:
    with pytest.raises(DownloadError):
        api.download_artifact("r1", name, tmp_path / "out")
    assert not (tmp_path / "escape.txt").exists()


def test_a_symlinked_directory_in_dest_that_leads_out_is_refused(api: Api, tmp_path: Path) -> None:
    dest, outside = tmp_path / "dest", tmp_path / "outside"
    dest.mkdir()
    outside.mkdir()
    (dest / "ckpt").symlink_to(outside)
    with pytest.raises(DownloadError, match="outside"):
        api.download_artifact("r1", "ckpt/model.pt", dest)
    assert list(outside.iterdir()) == []


def test_a_symlink_at_the_target_is_replaced_not_written_through(api: Api, tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (tmp_path / "dest" / "ckpt").mkdir(parents=True)
    (tmp_path / "dest" / "ckpt" / "model.pt").symlink_to(victim)
    path = api.download_artifact("r1", "ckpt/model.pt", tmp_path / "dest")
    assert not path.is_symlink() and path.read_bytes() == DATA
    assert victim.read_text() == "keep me"


def test_a_damaged_blob_is_not_written(filled: Store, tmp_path: Path) -> None:
    blob = BlobStore(filled.data_dir).path_of(hashlib.sha256(DATA).hexdigest())
    blob.write_bytes(b"bit rot" + DATA[7:])
    tmp_path = tmp_path / "out"
    with Api(filled.data_dir) as api, pytest.raises(DownloadError, match="sha256"):
        api.download_artifact("r1", "ckpt/model.pt", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_the_blob_writer_refuses_more_bytes_than_announced_and_leaves_nothing(store: Store) -> None:
    blobs = BlobStore(store.data_dir)
    with pytest.raises(OversizedUploadError), blobs.writer(hashlib.sha256(b"abcd").hexdigest(), 3) as writer:
        writer.write(b"abcd")
    assert blobs.count() == 0 and list(blobs.temp_dir.iterdir()) == []


def test_stale_temporary_files_are_swept(store: Store) -> None:
    blobs = BlobStore(store.data_dir)
    blobs.temp_dir.mkdir(parents=True)
    stale, fresh = blobs.temp_dir / "upload-old", blobs.temp_dir / "upload-new"
    stale.write_bytes(b"left by a crash")
    fresh.write_bytes(b"an upload in progress")
    os.utime(stale, (0, 0))
    assert blobs.sweep_temp() == 1
    assert list(blobs.temp_dir.iterdir()) == [fresh]


def test_open_artifact_streams_the_bytes_with_their_type_and_sha256(api: Api) -> None:
    with api.open_artifact("r1", "ckpt/model.pt", rank=1) as opened:
        chunks = []
        while chunk := opened.read(10_000):
            chunks.append(chunk)
    assert b"".join(chunks) == DATA
    assert (opened.sha256, opened.size) == (hashlib.sha256(DATA).hexdigest(), len(DATA))
    assert opened.media_type == "application/octet-stream"


@pytest.mark.parametrize(
    ("run", "name", "error"),
    [
        ("nope", "ckpt/model.pt", RunNotFoundError),
        ("r1", "missing.bin", ArtifactNotFoundError),
        ("r1", "later.bin", ArtifactPendingError),
        ("r1", "../../etc/passwd", ArtifactNotFoundError),
    ],
)
def test_open_artifact_refuses_what_it_cannot_serve(api: Api, run: str, name: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        api.open_artifact(run, name)
