"""A spool file whose batch the store refuses, or whose batch id conflicts with a stored one,
is kept as ``*.rejected`` with the reason, and everything else in it is stored."""

from __future__ import annotations

import time
from pathlib import Path

from batches import make_batch
from click.testing import CliRunner

from aquarium.agent.spool import SpoolHeader, SpoolWriter, segment_path
from aquarium.agent.wire import pack_batch
from aquarium.cli import cli
from aquarium.collector import Store


def spool(data_dir: Path, batches: list) -> Path:  # type: ignore[type-arg]
    path = segment_path(data_dir / "spool", "r1", 0, "inc-a", 0)
    writer = SpoolWriter(path, SpoolHeader("r1", 0, "inc-a", time.time()))
    for batch in batches:
        writer.append(pack_batch(batch))
    writer.close()
    return path


def test_a_batch_the_store_refuses_is_reported_and_the_rest_stored(data_dir: Path) -> None:
    unstorable = make_batch(1, [10], [1.0], meta={"world_size": 2**64 - 1})  # decodes; SQLite cannot hold it
    path = spool(data_dir, [make_batch(0, [0, 1], [0.5, 0.25]), unstorable, make_batch(2, [20], [2.0])])
    with Store(data_dir) as store:
        report = store.ingest_spool()
        assert store.read_series("r1", "loss").steps.tolist() == [0, 1, 20]
    [(where, why)] = report.rejected
    assert where == str(path) and "(r1, 0, inc-a, 1)" in why and "OverflowError" in why
    assert not path.exists() and path.with_suffix(".spool.rejected").exists()


def test_ls_on_a_data_dir_with_an_unstorable_spooled_batch_prints_no_traceback(data_dir: Path) -> None:
    spool(data_dir, [make_batch(0, [0], [0.5], meta={"world_size": 2**64 - 1})])
    result = CliRunner().invoke(cli, ["ls", "--data-dir", str(data_dir)])
    assert result.exit_code == 0 and "Traceback" not in result.output


def test_a_spooled_batch_whose_id_conflicts_is_kept_not_deleted(data_dir: Path) -> None:
    with Store(data_dir) as store:
        store.ingest([make_batch(0, [0], [0.5])])
    path = spool(data_dir, [make_batch(0, [0], [9.0])])  # the same id, other content
    with Store(data_dir) as store:
        report = store.ingest_spool()
        assert store.read_series("r1", "loss").values.tolist() == [0.5]
    [(_, why)] = report.rejected
    assert why.startswith("conflict:")
    assert path.with_suffix(".spool.rejected").exists()
