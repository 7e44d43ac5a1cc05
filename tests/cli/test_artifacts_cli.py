"""`aquarium artifacts RUN [--get NAME -o DIR] [--json]` and artifacts in `aquarium show --json`,
from a data dir and from a served API."""

from __future__ import annotations

import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from aquarium.agent.wire import ArtifactRecord, Batch, BatchId
from aquarium.cli import cli
from aquarium.collector import Store
from aquarium.collector.api import ApiServer, ApiSettings, create_app
from aquarium.collector.blobs import BlobStore

DATA = os.urandom(3000)
SHA = hashlib.sha256(DATA).hexdigest()
HTML_NAME = "<b>bold</b>.txt"


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})


@pytest.fixture
def filled(data_dir: Path) -> Iterator[Store]:
    """Run ``run-with-artifacts``: a stored model (rank 0), a stored HTML-named file, a pending figure."""
    model = ArtifactRecord(uuid.uuid4().hex, "ckpt/model.pt", "model", len(DATA), 1.7e9, 12, "pytorch")
    html = ArtifactRecord(uuid.uuid4().hex, HTML_NAME, "file", len(DATA), 1.7e9 + 1)
    figure = ArtifactRecord(uuid.uuid4().hex, "loss.png", "figure", 10, 1.7e9 + 2, media_type="image/png")
    with Store(data_dir) as store:
        run = BatchId("run-with-artifacts", 0, "inc-a", 0)
        store.ingest([Batch(run, meta={"name": "arty"}, artifacts=[model, html, figure])])
        with BlobStore(data_dir).writer(SHA, len(DATA)) as writer:
            writer.write(DATA)
            writer.commit()
        for rec in (model, html):
            store.complete_upload(run.run, rec.upload, SHA, len(DATA), False)
        yield store


def test_the_table_lists_name_kind_size_sha_rank_step_state(filled: Store, data_dir: Path) -> None:
    result = invoke("artifacts", "run-with", "--data-dir", str(data_dir))  # a unique prefix
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    model = next(line for line in lines if "ckpt/model.pt" in line)
    for cell in ("model (pytorch)", "2.9 KiB", SHA[:12], "12", "stored"):
        assert cell in model
    assert SHA[:13] not in model  # the short form
    figure = next(line for line in lines if "loss.png" in line)
    assert "pending" in figure and "10 B" in figure and " - " in figure
    assert HTML_NAME in result.output  # printed as text, not swallowed as rich markup
    assert "3 artifacts" in result.output


def test_json_lists_every_field(filled: Store, data_dir: Path) -> None:
    result = invoke("artifacts", "arty", "--data-dir", str(data_dir), "--json")  # by name
    assert result.exit_code == 0, result.output
    listed = json.loads(result.output)
    assert listed == filled.artifacts("run-with-artifacts")
    assert [a["state"] for a in listed] == ["stored", "stored", "pending"]


def test_get_writes_the_file_with_the_same_sha256(filled: Store, data_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = invoke(
        "artifacts", "run-with-artifacts", "--data-dir", str(data_dir), "--get", "ckpt/model.pt", "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    written = out / "ckpt" / "model.pt"
    assert hashlib.sha256(written.read_bytes()).hexdigest() == SHA
    assert str(written.resolve()) in result.output and "3,000 bytes" in result.output


@pytest.mark.parametrize(
    ("name", "message"),
    [("loss.png", "still pending"), ("nothing.bin", "has no artifact"), ("../up.txt", "not an artifact name")],
)
def test_get_of_what_cannot_be_written_is_a_one_line_error(
    filled: Store, data_dir: Path, tmp_path: Path, name: str, message: str
) -> None:
    result = invoke(
        "artifacts", "run-with-artifacts", "--data-dir", str(data_dir), "--get", name, "-o", str(tmp_path / "o")
    )
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "up.txt").exists()


def test_an_unknown_run_is_a_one_line_error(filled: Store, data_dir: Path) -> None:
    result = invoke("artifacts", "nope", "--data-dir", str(data_dir))
    assert result.exit_code == 1 and "nope" in result.output and "Traceback" not in result.output


def test_show_json_includes_the_artifacts(filled: Store, data_dir: Path) -> None:
    result = invoke("show", "run-with-artifacts", "--data-dir", str(data_dir), "--json")
    assert result.exit_code == 0, result.output
    shown = json.loads(result.output)
    assert [a["name"] for a in shown["artifacts"]] == ["ckpt/model.pt", HTML_NAME, "loss.png"]


def test_the_same_through_the_http_api(filled: Store, tmp_path: Path) -> None:
    settings = ApiSettings(port=0)
    with ApiServer(create_app(filled, settings), settings) as server:
        listed = invoke("artifacts", "run-with-artifacts", "--api", server.url, "--json")
        got = invoke("artifacts", "run-with-artifacts", "--api", server.url, "--get", HTML_NAME, "-o", str(tmp_path))
        shown = invoke("show", "run-with-artifacts", "--api", server.url, "--json")
    assert json.loads(listed.output) == filled.artifacts("run-with-artifacts")
    assert got.exit_code == 0, got.output
    assert (tmp_path / HTML_NAME).read_bytes() == DATA
    assert len(json.loads(shown.output)["artifacts"]) == 3


def test_a_run_without_artifacts_says_so(data_dir: Path) -> None:
    with Store(data_dir) as store:
        store.ingest([Batch(BatchId("plain", 0, "inc-a", 0), meta={"name": "plain"})])
    result = invoke("artifacts", "plain", "--data-dir", str(data_dir))
    assert result.exit_code == 0 and "has no artifacts" in result.output


def test_json_is_strict_with_non_finite_meta(data_dir: Path) -> None:
    rec = ArtifactRecord(uuid.uuid4().hex, "m.bin", "file", 1, 1.7e9, meta={"loss": float("nan")})
    with Store(data_dir) as store:
        store.ingest([Batch(BatchId("nan-meta", 0, "inc-a", 0), artifacts=[rec])])
    result = invoke("artifacts", "nan-meta", "--data-dir", str(data_dir), "--json")
    assert json.loads(result.output, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))[0]["meta"] == {
        "loss": "NaN"
    }
