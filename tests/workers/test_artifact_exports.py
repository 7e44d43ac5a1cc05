"""Artifacts exported with every target, read back with the target's own tools, twice.

The source store is built through the store's own methods (records in wire batches, bytes
through the blob store, then the upload's completion), as a collector builds it: files, a model,
a raster figure, an HTML and a text file, a file that changed before its upload, one whose
upload never completed, one name logged by two ranks with the same bytes and one with other
bytes, and a name logged twice.
"""

from __future__ import annotations

import hashlib
import io
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from batches import make_batch

from aquarium.agent.wire import ArtifactRecord, Batch, BatchId, pack_batch, unpack_batch
from aquarium.collector import Store
from aquarium.collector.blobs import BlobStore
from aquarium.workers.jobs import run_export

RUN = "art1"


def png(color: tuple[int, int, int], size: tuple[int, int] = (6, 4)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return out.getvalue()


FILES: dict[str, bytes] = {
    "data/table.csv": b"a,b\n1,2\n3,4\n",
    "model.pt": b"\x80\x02model-weights" * 64,
    "plots/loss.png": png((200, 30, 30)),
    "report.html": b"<html><body><script>alert(1)</script>report</body></html>",
    "notes.txt": b"lr was too high\n",
    "config.json": b'{"lr": 0.1}',
    "ckpt.bin": b"second checkpoint",
    "odd+name@v1.bin": b"a name MLflow refuses as a tag key",
}
SHARD = {0: b"shard of rank 0", 1: b"shard of rank 1"}
EXPORTED = {**FILES, "shard.bin": SHARD[0], "rank1/shard.bin": SHARD[1]}  # what every file target holds


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Builder:
    """Artifacts into a store the way a collector stores them."""

    def __init__(self, store: Store, data_dir: Path, incarnation: str = "inc-a") -> None:
        self.store, self.blobs, self.seq = store, BlobStore(data_dir), {0: 1, 1: 1}
        self.incarnation = incarnation

    def add(self, name: str, data: bytes, *, kind: str = "file", rank: int = 0, step: int | None = None,
            framework: str | None = None, media_type: str | None = None, uploaded: bool = True,
            changed: bool = False, at: float = 1.7e9) -> None:  # fmt: skip
        from aquarium.agent.artifact_call import media_type_of

        upload = uuid.uuid4().hex
        size = len(data) + (1 if changed else 0)  # a changed file: the call saw another size
        record = ArtifactRecord(upload, name, kind, size, at + self.seq[rank], step, framework,
                                media_type or media_type_of(name), {"note": name})  # fmt: skip
        batch = Batch(BatchId(RUN, rank, self.incarnation, self.seq[rank]), artifacts=[record])
        self.seq[rank] += 1
        self.store.ingest([unpack_batch(pack_batch(batch))])
        if not uploaded:
            return
        with self.blobs.writer(sha(data), len(data)) as writer:
            writer.write(data)
            writer.commit()
        self.store.complete_upload(RUN, upload, sha(data), len(data), changed=False)


@pytest.fixture
def art_source(tmp_path: Path) -> Path:
    path = tmp_path / "source"
    with Store(path) as store:
        store.ingest([make_batch(0, [0, 1, 2, 3, 4], [1.0, 0.8, 0.6, 0.5, 0.4], run=RUN,
                                 params={"lr": 0.1}, meta={"name": "arty", "experiment": "art-exp"},
                                 status=[("running", 1.7e9), ("completed", 1.7e9 + 5)])])  # fmt: skip
        b = Builder(store, path)
        b.add("data/table.csv", FILES["data/table.csv"])
        b.add("ckpt.bin", b"first checkpoint")
        b.add("model.pt", FILES["model.pt"], kind="model", framework="pytorch", step=4)
        b.add("plots/loss.png", FILES["plots/loss.png"], kind="figure", step=3)
        b.add("report.html", FILES["report.html"])
        b.add("notes.txt", FILES["notes.txt"], changed=True)
        b.add("never-uploaded.bin", b"lost", uploaded=False)
        b.add("config.json", FILES["config.json"], rank=0)
        b.add("config.json", FILES["config.json"], rank=1)
        b.add("shard.bin", SHARD[0], rank=0)
        b.add("shard.bin", SHARD[1], rank=1)
        b.add("ckpt.bin", FILES["ckpt.bin"])
        b.add("odd+name@v1.bin", FILES["odd+name@v1.bin"])
    return path


def notes(report: dict[str, Any], field: str = "artifacts") -> dict[str, dict[str, Any]]:
    return {n["what"]: n for n in report["notes"] if n["field"] == field}


def check_artifact_report(report: dict[str, Any], kept: int = len(EXPORTED)) -> None:
    assert report["fields"]["artifacts"] == {"kept": kept, "not_kept": 2}
    found = notes(report)
    assert found["pending"]["kept"] is False and found["pending"]["examples"] == ["never-uploaded.bin"]
    assert found["superseded"]["kept"] is False and found["superseded"]["examples"] == ["ckpt.bin"]
    assert found["changed"]["examples"] == ["notes.txt"]
    assert found["same bytes"]["examples"] == ["config.json (rank 1)"]
    assert found["rank"]["examples"] == ["rank1/shard.bin"]


# -- MLflow --------------------------------------------------------------------------------------


def mlflow_files(uri: str, ml_id: str, into: Path) -> dict[str, str]:
    """Every artifact file of the MLflow run, read back with MlflowClient: name -> sha256."""
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    names: list[str] = []

    def walk(path: str | None) -> None:
        for info in client.list_artifacts(ml_id, path):
            if info.is_dir:
                walk(info.path)
            else:
                names.append(info.path)

    walk(None)
    local = Path(client.download_artifacts(ml_id, "", str(into)))
    return {name: sha((local / name).read_bytes()) for name in names}


def test_mlflow_keeps_every_stored_artifact_and_a_reexport_uploads_nothing(
    art_source: Path, mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    options = {"tracking_uri": mlflow_uri}
    first = run_export("mlflow", RUN, str(art_source), options)
    check_artifact_report(first)
    client = MlflowClient(tracking_uri=mlflow_uri)
    [ml_run] = client.search_runs([client.get_experiment_by_name("art-exp").experiment_id])
    ml_id = ml_run.info.run_id
    expected = {name: sha(data) for name, data in EXPORTED.items()}
    assert mlflow_files(mlflow_uri, ml_id, tmp_path / "one") == expected
    assert ml_run.data.tags["aquarium.framework.model.pt"] == "pytorch"
    assert ml_run.data.tags["aquarium.artifact.plots/loss.png"] == sha(FILES["plots/loss.png"])
    assert notes(first)["hashed tag"]["examples"] == ["odd+name@v1.bin"]

    uploads: list[str] = []
    real = MlflowClient.log_artifact

    def counting(self: Any, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        uploads.append(local_path)
        real(self, run_id, local_path, artifact_path)

    monkeypatch.setattr(MlflowClient, "log_artifact", counting)
    second = run_export("mlflow", RUN, str(art_source), options)
    check_artifact_report(second)
    assert uploads == []
    assert notes(second)["unchanged"]["count"] == len(EXPORTED)
    assert mlflow_files(mlflow_uri, ml_id, tmp_path / "two") == expected
    assert len(client.search_runs([ml_run.info.experiment_id])) == 1


# -- TensorBoard ---------------------------------------------------------------------------------


def tensorboard_artifacts(directory: Path) -> tuple[dict[str, tuple[int, str]], dict[str, str], str]:
    """(image tag -> (step, sha256), text tag -> sha256, the aquarium/artifacts listing), read
    back with TensorBoard's EventAccumulator."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(directory), size_guidance={"images": 0, "tensors": 0})
    acc.Reload()
    images = {}
    for tag in acc.Tags()["images"]:
        [event] = acc.Images(tag)
        images[tag] = (event.step, sha(event.encoded_image_string))
        assert (event.width, event.height) == (6, 4)
    texts, listing = {}, ""
    for tag in acc.Tags()["tensors"]:
        [event] = acc.Tensors(tag)
        if acc.SummaryMetadata(tag).plugin_data.plugin_name != "text":
            continue
        body = event.tensor_proto.string_val[0]
        if tag == "aquarium/artifacts":
            listing = body.decode()
        else:
            texts[tag] = sha(body)
    return images, texts, listing


def test_tensorboard_keeps_figures_as_images_and_text_as_text_and_lists_the_rest(
    art_source: Path, tmp_path: Path
) -> None:
    options = {"log_dir": str(tmp_path / "tb")}
    for _ in range(2):  # a re-export replaces the run's directory: the same read-back
        report = run_export("tensorboard", RUN, str(art_source), options)
        images, texts, listing = tensorboard_artifacts(Path(report["destination"]))
        assert images == {"plots/loss.png": (3, sha(FILES["plots/loss.png"]))}
        text_names = ("data/table.csv", "report.html", "notes.txt")
        assert texts == {name: sha(FILES[name]) for name in text_names}
        files = sorted(set(EXPORTED) - set(images) - set(text_names))
        assert report["fields"]["artifacts"] == {"kept": 4, "not_kept": 2 + len(files)}
        assert notes(report)["no files"]["count"] == len(files)
        assert set(notes(report)["no files"]["examples"]) <= set(files)
        for name in files:
            assert f"| {name} |" in listing and f"{sha(EXPORTED[name])} | not kept" in listing


# -- the seed's directory format -----------------------------------------------------------------


def test_seed_dir_holds_the_files_and_lists_them_as_the_seed_did(art_source: Path, tmp_path: Path) -> None:
    for _ in range(2):
        report = run_export("seed", RUN, str(art_source), {"out": str(tmp_path / "seed")})
        check_artifact_report(report)
        root = Path(report["destination"])
        listed = json.loads((root / "artifacts.json").read_text())
        assert sorted(listed) == sorted(EXPORTED)
        for name, data in EXPORTED.items():
            entry = listed[name]
            path = Path(entry["path"])
            assert path == root / ("plots" if name == "plots/loss.png" else "artifacts") / name
            assert sha(path.read_bytes()) == sha(data) == entry["sha256"] and entry["size"] == len(data)
        assert listed["model.pt"]["type"] == "model"
        assert listed["model.pt"]["framework"] == "pytorch" and listed["plots/loss.png"]["type"] == "figure"
        assert listed["data/table.csv"]["type"] == "table" and listed["report.html"]["type"] == "other"
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and p.parent != root)
        assert files == sorted(str(Path(e["path"]).relative_to(root)) for e in listed.values())
        assert json.loads((root / "summary.json").read_text())["artifacts"] == list(listed)


def test_a_seed_dir_s_artifacts_are_reported_not_imported(art_source: Path, tmp_path: Path) -> None:
    from aquarium.workers.report import Report
    from aquarium.workers.sources.seed import SeedSource

    report = run_export("seed", RUN, str(art_source), {"out": str(tmp_path / "seed")})
    imported = Report("seed", "x")
    SeedSource().read_run(str(tmp_path / "seed"), report["destination"], {}, imported, lambda *a: None)
    assert imported.fields["artifacts"].not_kept == len(EXPORTED)
    assert imported.to_dict()["notes"][-1]["what"] == "not imported"


# -- JSON and CSV --------------------------------------------------------------------------------


def test_json_lists_every_artifact_record_and_csv_reports_them_not_kept(art_source: Path, tmp_path: Path) -> None:
    report = run_export("json", RUN, str(art_source), {"out": str(tmp_path / "run.json")})
    document = json.loads((tmp_path / "run.json").read_text())
    with Store(art_source, read_only=True) as store:
        assert document["artifacts"] == store.artifacts(RUN)
    records = len(document["artifacts"])
    assert records == 13 and {a["state"] for a in document["artifacts"]} == {"stored", "changed", "pending"}
    assert report["fields"]["artifacts"] == {"kept": 0, "not_kept": records}
    assert notes(report)["metadata only"]["count"] == records
    report = run_export("csv", RUN, str(art_source), {"out": str(tmp_path / "run.csv")})
    assert report["fields"]["artifacts"] == {"kept": 0, "not_kept": records}
    assert "CSV holds series only" in notes(report)["not in CSV"]["how"]


# -- Weights & Biases (offline) ------------------------------------------------------------------


def wandb_read_back(base: Path) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """(the offline run, artifact file name -> sha256 of the bytes its manifest points at, the
    artifacts by type), read with wandb_files from the run dir W&B wrote."""
    from aquarium.workers.wandb_files import read_run, run_dirs

    [run_dir] = run_dirs(base / "wandb")
    run = read_run(run_dir)
    files = {}
    for artifact in run.artifacts:
        for entry in artifact.files:
            data = Path(entry.local_path).read_bytes()
            assert len(data) == entry.size
            files[entry.name] = sha(data)
    return run, files, {a.type: a for a in run.artifacts}


def test_wandb_offline_keeps_files_models_and_images_and_a_reexport_downloads_nothing(
    art_source: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aquarium.collector import Api

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    options = {"dir": str(tmp_path / "wb"), "mode": "offline"}
    downloads: list[str] = []
    real = Api.download_artifact

    def counting(self: Api, run_id: str, name: str, dest: Any = ".", rank: int | None = None) -> Path:
        downloads.append(name)
        return real(self, run_id, name, dest, rank)

    monkeypatch.setattr(Api, "download_artifact", counting)
    for attempt in range(2):
        report = run_export("wandb", RUN, str(art_source), options)
        check_artifact_report(report)
        run, files, by_type = wandb_read_back(tmp_path / "wb")
        assert files == {name: sha(data) for name, data in EXPORTED.items()}
        [model] = [a for a in run.artifacts if a.type == "model"]
        assert [f.name for f in model.files] == ["model.pt"] and model.metadata["framework"] == "pytorch"
        assert sorted(f.name for f in by_type["file"].files) == sorted(set(EXPORTED) - {"model.pt"})
        [row] = [r for r in run.history if "plots/loss.png" in r.values]
        image = row.values["plots/loss.png"]
        assert row.step == 3 and row.values["loss"] == 0.5 and image["_type"] == "image-file"
        saved = run.path / "files" / image["path"]
        assert image["path"] in run.files and sha(saved.read_bytes()) == sha(FILES["plots/loss.png"])
        assert [r.step for r in run.history] == [0, 1, 2, 3, 4]
        assert len(downloads) == (len(EXPORTED) if attempt == 0 else 0)  # the bytes are there already
        downloads.clear()
    kept = tmp_path / "wb" / "wandb" / "aquarium-artifacts" / RUN
    assert sorted(p.name for p in kept.iterdir()) == sorted({sha(data) for data in EXPORTED.values()})


# -- through the HTTP API, as an RQ job ------------------------------------------------------------


def test_a_job_reading_the_http_api_exports_the_same_artifacts(
    art_source: Path, connection: Any, work: Any, tmp_path: Path
) -> None:
    """A worker with no access to the store: the bytes come over ``GET /api/runs/RUN/artifacts/NAME``."""
    from aquarium.collector.api import ApiServer, ApiSettings, create_app
    from aquarium.workers import enqueue_export, wait_for

    trees = []
    store = Store(art_source, read_only=True)
    settings = ApiSettings(port=0)
    try:
        with ApiServer(create_app(store, settings), settings) as running:
            for name, where in (("http", running.url), ("local", str(art_source))):
                job = enqueue_export(connection, "seed", RUN, where, {"out": str(tmp_path / name)})
                work()
                [outcome] = wait_for([job])
                assert outcome.status == "finished" and outcome.report is not None, outcome.error
                root = Path(outcome.report["destination"])
                trees.append({str(p.relative_to(root)): sha(p.read_bytes()) for p in root.rglob("*")
                              if p.is_file() and p.name not in ("artifacts.json", "summary.json")})  # fmt: skip
                check_artifact_report(outcome.report)
    finally:
        store.close()
    assert trees[0] == trees[1]
    assert trees[0]["plots/plots/loss.png"] == sha(FILES["plots/loss.png"])


def test_an_artifact_logged_again_with_other_bytes_replaces_the_exported_one(
    art_source: Path, mlflow_uri: str, tmp_path: Path
) -> None:
    from mlflow import MlflowClient

    wb_options = {"dir": str(tmp_path / "wb"), "mode": "offline"}
    ml_options = {"tracking_uri": mlflow_uri}
    for target, options in (("wandb", wb_options), ("mlflow", ml_options)):
        run_export(target, RUN, str(art_source), options)
    with Store(art_source) as store:
        Builder(store, art_source, "inc-b").add("model.pt", b"retrained", kind="model", framework="jax", at=1.8e9)
    expected = {**{name: sha(data) for name, data in EXPORTED.items()}, "model.pt": sha(b"retrained")}
    report = run_export("mlflow", RUN, str(art_source), ml_options)
    assert notes(report)["unchanged"]["count"] == len(EXPORTED) - 1  # only the model is uploaded again
    client = MlflowClient(tracking_uri=mlflow_uri)
    ml_run = client.get_run(report["destination"].rsplit("/", 1)[1])
    assert mlflow_files(mlflow_uri, ml_run.info.run_id, tmp_path / "ml") == expected
    assert ml_run.data.tags["aquarium.framework.model.pt"] == "jax"
    run_export("wandb", RUN, str(art_source), wb_options)
    run, files, by_type = wandb_read_back(tmp_path / "wb")
    assert files == expected and by_type["model"].metadata["framework"] == "jax"
    kept = tmp_path / "wb" / "wandb" / "aquarium-artifacts" / RUN
    assert sha(FILES["model.pt"]) not in {p.name for p in kept.iterdir()}  # the old bytes are gone


def test_an_mlflow_export_that_failed_half_way_uploads_only_the_rest_when_retried(
    art_source: Path, mlflow_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from aquarium.workers.targets import ExportError

    with Store(art_source) as store:  # a run of its own on the module's server
        store.ingest([make_batch(0, [0], [1.0], run=RUN, inc="inc-c", meta={"experiment": "art-retry"})])
    uploads: list[str] = []
    real = MlflowClient.log_artifact

    def failing_third(self: Any, run_id: str, local_path: str, artifact_path: str | None = None) -> None:
        if len(uploads) == 3:
            from mlflow.exceptions import MlflowException

            raise MlflowException("the artifact store went away")
        uploads.append(local_path)
        real(self, run_id, local_path, artifact_path)

    monkeypatch.setattr(MlflowClient, "log_artifact", failing_third)
    with pytest.raises(ExportError, match="the artifact store went away"):
        run_export("mlflow", RUN, str(art_source), {"tracking_uri": mlflow_uri})
    monkeypatch.setattr(MlflowClient, "log_artifact", real)
    report = run_export("mlflow", RUN, str(art_source), {"tracking_uri": mlflow_uri})
    assert notes(report)["unchanged"]["count"] == 3  # the three uploaded before the failure
    ml_id = report["destination"].rsplit("/", 1)[1]
    assert mlflow_files(mlflow_uri, ml_id, tmp_path / "ml") == {name: sha(data) for name, data in EXPORTED.items()}
