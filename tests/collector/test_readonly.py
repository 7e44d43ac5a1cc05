"""A store on a read-only data dir (a colleague's results, a read-only mount) is read as it is.

The data dir is bind-mounted read-only, so SQLite really meets a directory it cannot write
(tests run as root, for whom permission bits would not stop a write).
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import aquarium.agent as aq
from aquarium.cli import cli
from aquarium.collector import Collector, CollectorSettings, Store
from aquarium.collector.store import ReadOnlyStoreError


def log_offline(data_dir: Path, run_id: str, steps: int = 5) -> None:
    run = aq.init(run_id=run_id, experiment="shared", mode="offline", data_dir=data_dir)
    for step in range(steps):
        run.log({"loss": float(step)}, step=step)
    run.finish()


@pytest.fixture
def mounted(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """(source, read-only view of it): write through the first, read through the second."""
    source, view = tmp_path / "source", tmp_path / "view"
    source.mkdir()
    view.mkdir()
    subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(view)], check=True)
    try:
        yield source, view
    finally:
        subprocess.run(["umount", str(view)], check=True)


@pytest.fixture
def readonly_data_dir(mounted: tuple[Path, Path]) -> Path:
    """A read-only data dir with one stored run and one run still in the spool."""
    source, view = mounted
    log_offline(source, "stored")
    with Store(source) as store:
        store.ingest_spool()
    log_offline(source, "spooled")
    return view


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_a_read_only_store_is_read_as_it_is(readonly_data_dir: Path) -> None:
    with Store(readonly_data_dir) as store:
        assert store.read_only
        assert [r["id"] for r in store.list_runs()] == ["stored"]
        assert store.read_series("stored", "loss").values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert len(store.waiting_spool_files()) == 1


def test_writing_a_read_only_store_raises_naming_the_path(readonly_data_dir: Path) -> None:
    with Store(readonly_data_dir) as store:
        for write in (store.ingest_spool, lambda: store.ingest([]), store.compact, lambda: store.delete_run("stored")):
            with pytest.raises(ReadOnlyStoreError, match=str(readonly_data_dir)):
                write()
    with pytest.raises(ReadOnlyStoreError, match=f"the store at {readonly_data_dir}.* is read-only"):
        Store(readonly_data_dir, read_only=False)


def test_ls_and_show_work_and_say_how_many_spool_files_wait(readonly_data_dir: Path) -> None:
    code, out, err = invoke("ls", "--json", "--data-dir", str(readonly_data_dir))
    assert code == 0 and [r["id"] for r in json.loads(out)] == ["stored"]
    assert "read-only: 1 spool file wait" in err
    code, out, err = invoke("show", "stored", "--data-dir", str(readonly_data_dir))
    assert code == 0 and "loss" in out and "1 spool file" in err


def test_a_collector_on_a_read_only_data_dir_refuses_with_the_path(readonly_data_dir: Path) -> None:
    settings = CollectorSettings(redis_url="redis://127.0.0.1:1/0", data_dir=readonly_data_dir)
    with pytest.raises(ReadOnlyStoreError, match=str(readonly_data_dir)):
        Collector(settings)
    code, out, err = invoke("collector", "--data-dir", str(readonly_data_dir), "--redis-url", "redis://127.0.0.1:1/0")
    assert code == 1 and str(readonly_data_dir) in err and "Traceback" not in out + err


def test_a_live_store_is_read_through_a_read_only_mount(mounted: tuple[Path, Path]) -> None:
    """While a writer holds the store open (WAL and its index exist), the read-only view sees
    its commits, including ones made after the view was opened."""
    source, view = mounted
    log_offline(source, "first")
    with Store(source) as writer:
        writer.ingest_spool()
        with Store(view) as reader:
            assert [r["id"] for r in reader.list_runs()] == ["first"]
            log_offline(source, "second")
            writer.ingest_spool()
            assert sorted(r["id"] for r in reader.list_runs()) == ["first", "second"]


def test_the_seed_experiment_manager_reads_a_read_only_data_dir(readonly_data_dir: Path) -> None:
    from aquarium.collector import ExperimentManager

    with ExperimentManager(readonly_data_dir) as manager:
        assert [e["experiment_id"] for e in manager.list_experiments()] == ["stored"]
        assert manager.get_experiment("stored").hyperparameters == {}


def test_a_read_only_store_of_an_older_schema_says_it_must_be_migrated(mounted: tuple[Path, Path]) -> None:
    import sqlite_utils

    from aquarium.collector.store.schema import DB_NAME, connect, migrations

    source, view = mounted
    conn = connect(source / DB_NAME, writer=True)
    migrations.apply(sqlite_utils.Database(conn), stop_before="m002_digests_seen_order_exact_summaries")
    conn.close()
    with pytest.raises(ReadOnlyStoreError, match="cannot migrate it to this version's schema"):
        Store(view)
