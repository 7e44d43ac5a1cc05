"""Artifact records in the store: written with their batch through the ledger (exactly once, from
the stream, the spool or a direct ingest), joined with upload completions in either order."""

from __future__ import annotations

import hashlib
import time
import uuid
from pathlib import Path
from typing import Any

import msgpack
import pytest
import redis
from batches import make_batch
from ledger import KEYS, burst

from aquarium.agent.errors import RunNotFoundError
from aquarium.agent.spool import SpoolHeader, SpoolWriter, segment_path
from aquarium.agent.wire import ArtifactRecord, Batch, BatchId, pack_batch, unpack_batch
from aquarium.collector import Store
from aquarium.collector.store import ArtifactNotFoundError, ArtifactPendingError, UploadConflictError
from aquarium.collector.store.ledger import digest


def record(name: str, size: int = 10, **extra: Any) -> ArtifactRecord:
    return ArtifactRecord(uuid.uuid4().hex, name, extra.pop("kind", "file"), size, extra.pop("time", 1.7e9), **extra)


def artifact_batch(seq: int, *records: ArtifactRecord, run: str = "r1", rank: int = 0) -> Batch:
    return unpack_batch(pack_batch(Batch(BatchId(run, rank, "inc-a", seq), artifacts=list(records))))


SHA = hashlib.sha256(b"x").hexdigest()
OTHER_SHA = hashlib.sha256(b"y").hexdigest()


def test_a_record_is_stored_with_its_batch_and_a_duplicate_batch_adds_nothing(store: Store) -> None:
    rec = record("model.pt", kind="model", framework="pytorch", step=3, meta={"acc": 0.9, "nested": {"a": [1]}})
    batch = artifact_batch(0, rec)
    assert store.ingest([batch]).stored == 1
    assert store.ingest([batch]).duplicates == 1
    [a] = store.artifacts("r1")
    assert a == {
        "upload": rec.upload, "name": "model.pt", "kind": "model", "rank": 0, "size": 10, "sha256": None,
        "step": 3, "framework": "pytorch", "media_type": "application/octet-stream",
        "meta": {"acc": 0.9, "nested": {"a": [1]}}, "logged_at": 1.7e9, "state": "pending",
    }  # fmt: skip


def test_a_batch_id_reused_with_other_artifacts_is_a_conflict_not_a_duplicate(store: Store) -> None:
    first, forged = artifact_batch(0, record("a.txt")), artifact_batch(0, record("b.txt"))
    assert digest(first) != digest(forged)
    store.ingest([first])
    result = store.ingest([forged])
    assert result.conflicts == [forged] and result.duplicates == 0
    assert [a["name"] for a in store.artifacts("r1")] == ["a.txt"]


def test_batches_without_artifacts_keep_their_digest() -> None:
    """Batches stored before artifacts existed must stay duplicates, not become conflicts: their
    digest is the one computed before (the same fields, in the same encoding)."""
    batch = make_batch(0, [1, 2], [1.0, 2.0], params={"lr": 0.1}, status=[("running", 1.0)])
    i, c = batch.id, batch.metrics[0]
    before = [i.run, i.rank, i.incarnation, i.seq, batch.params, batch.tags, batch.status, batch.meta]
    before += (c.key, c.steps, c.values, c.times)
    assert digest(batch) == hashlib.sha256(msgpack.packb(before, use_bin_type=True, default=str)).digest()[:16]


@pytest.mark.parametrize("order", ["record first", "completion first"])
def test_record_and_completion_join_in_either_order(store: Store, order: str) -> None:
    store.ingest([make_batch(0, [0], [1.0])])  # the run exists
    rec = record("data.csv", size=1)
    if order == "record first":
        store.ingest([artifact_batch(1, rec)])
        assert store.artifacts("r1")[0]["state"] == "pending"
        assert store.complete_upload("r1", rec.upload, SHA, 1, changed=False) == "stored"
    else:
        assert store.complete_upload("r1", rec.upload, SHA, 1, changed=False) == "stored"
        assert store.artifacts("r1") == []
        store.ingest([artifact_batch(1, rec)])
    [a] = store.artifacts("r1")
    assert (a["state"], a["sha256"], a["size"]) == ("stored", SHA, 1)
    assert store.artifact("r1", "data.csv")["sha256"] == SHA


def test_changed_comes_from_the_agent_or_from_a_size_other_than_the_calls(store: Store) -> None:
    said, sized = record("said.bin", size=1), record("sized.bin", size=5)
    store.ingest([artifact_batch(0, said, sized)])
    assert store.complete_upload("r1", said.upload, SHA, 1, changed=True) == "changed"
    assert store.complete_upload("r1", sized.upload, SHA, 1, changed=False) == "changed"
    assert [a["state"] for a in store.artifacts("r1")] == ["changed", "changed"]


def test_completing_again_is_idempotent_and_other_bytes_conflict(store: Store) -> None:
    rec = record("a.bin", size=1)
    store.ingest([artifact_batch(0, rec)])
    assert store.complete_upload("r1", rec.upload, SHA, 1, False) == "stored"
    assert store.complete_upload("r1", rec.upload, SHA, 1, False) == "stored"
    with pytest.raises(UploadConflictError):
        store.complete_upload("r1", rec.upload, OTHER_SHA, 1, False)
    assert store.upload_state("r1", rec.upload) == ("stored", SHA)


def test_an_unknown_run_raises_run_not_found(store: Store) -> None:
    with pytest.raises(RunNotFoundError):
        store.artifacts("nope")
    with pytest.raises(RunNotFoundError):
        store.artifact("nope", "a")
    with pytest.raises(RunNotFoundError):
        store.complete_upload("nope", uuid.uuid4().hex, SHA, 1, False)
    with pytest.raises(RunNotFoundError):
        store.upload_state("nope", uuid.uuid4().hex)


def test_download_lookup_takes_the_latest_of_a_name_per_rank_or_across_ranks(store: Store) -> None:
    old, new = record("ckpt", size=1, time=100.0), record("ckpt", size=1, time=200.0)
    other_rank = record("ckpt", size=1, time=150.0)
    store.ingest([artifact_batch(0, old, new), artifact_batch(0, other_rank, rank=1)])
    for rec in (old, other_rank):
        store.complete_upload("r1", rec.upload, SHA, 1, False)
    with pytest.raises(ArtifactPendingError):  # the latest is not uploaded yet: never an older one instead
        store.artifact("r1", "ckpt")
    store.complete_upload("r1", new.upload, OTHER_SHA, 1, False)
    assert store.artifact("r1", "ckpt")["upload"] == new.upload
    assert store.artifact("r1", "ckpt", rank=1)["upload"] == other_rank.upload
    with pytest.raises(ArtifactNotFoundError):
        store.artifact("r1", "ckpt", rank=2)
    with pytest.raises(ArtifactNotFoundError):
        store.artifact("r1", "other")
    assert [a["upload"] for a in store.artifacts("r1")] == [old.upload, other_rank.upload, new.upload]


def test_deleting_a_run_forgets_its_artifacts(store: Store) -> None:
    rec = record("a.bin", size=1)
    store.ingest([artifact_batch(0, rec)])
    store.complete_upload("r1", rec.upload, SHA, 1, False)
    assert store.delete_run("r1")
    with pytest.raises(RunNotFoundError):
        store.artifacts("r1")


def test_spooled_artifact_records_are_ingested_offline(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    rec = record("offline.txt")
    path = segment_path(data_dir / "spool", "r1", 0, "inc-a", 0)
    writer = SpoolWriter(path, SpoolHeader("r1", 0, "inc-a", time.time()))
    writer.append(pack_batch(Batch(BatchId("r1", 0, "inc-a", 0), artifacts=[rec])))
    writer.close()
    with Store(data_dir) as store:
        report = store.ingest_spool()
        assert report.stored == 1 and report.rejected == []
        assert [(a["upload"], a["name"], a["state"]) for a in store.artifacts("r1")] == [
            (rec.upload, "offline.txt", "pending")
        ]


def test_records_from_the_stream_are_stored_once_however_often_delivered(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    recs = [record(f"rank{r}/out.bin", size=r) for r in range(3)]
    packed = [pack_batch(Batch(BatchId("r1", r, "inc-a", 0), artifacts=[recs[r]])) for r in range(3)]
    for data in packed + packed:  # every batch delivered twice
        client.xadd(KEYS.stream, {"b": data})
    collector = burst(redis_url, data_dir)
    assert collector.stats.stored == 3 and collector.stats.duplicates == 3 and collector.stats.dead_letters == 0
    with Store(data_dir) as store:
        assert sorted(a["name"] for a in store.artifacts("r1")) == [f"rank{r}/out.bin" for r in range(3)]


@pytest.mark.parametrize("name", ["../../etc/passwd", "/etc/passwd", "a/../b", "C:\\x", "dir/./x"])
def test_a_forged_batch_with_a_path_traversal_name_is_dead_lettered(
    client: redis.Redis, redis_url: str, data_dir: Path, name: str
) -> None:
    forged = ArtifactRecord(uuid.uuid4().hex, name, "file", 1, 1.7e9)  # pack_batch does not check names
    client.xadd(KEYS.stream, {"b": pack_batch(Batch(BatchId("evil", 0, "inc-a", 0), artifacts=[forged]))})
    client.xadd(KEYS.stream, {"b": pack_batch(artifact_batch(0, record("good.txt"), run="fine"))})
    collector = burst(redis_url, data_dir)
    assert collector.stats.dead_letters == 1 and collector.stats.stored == 1
    [(_, fields)] = client.xrange(KEYS.dead_letter)
    assert b"bad artifact name" in fields[b"reason"]
    with Store(data_dir) as store:
        with pytest.raises(RunNotFoundError):
            store.artifacts("evil")
        assert [a["name"] for a in store.artifacts("fine")] == ["good.txt"]


def test_the_seeds_experiment_manager_lists_an_experiments_artifacts(data_dir: Path) -> None:
    from aquarium.collector import ExperimentManager

    rec = record("model.h5", kind="model", framework="tensorflow")
    with Store(data_dir) as store:
        store.ingest([artifact_batch(0, rec, run="seed-run")])
    with ExperimentManager(data_dir) as manager:
        experiment = manager.get_experiment("seed-run")
        assert experiment is not None
        assert [(a["name"], a["kind"], a["framework"]) for a in experiment.artifacts] == [
            ("model.h5", "model", "tensorflow")
        ]
