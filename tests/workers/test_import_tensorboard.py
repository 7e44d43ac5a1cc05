"""TensorBoard event dirs written by tensorboard's own writer, imported, read back through Api."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import redis
from ledger import CollectorThread, wait_until
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.compat.proto.summary_pb2 import Summary
from tensorboard.plugins.hparams import summary_v2 as hp
from tensorboard.plugins.scalar.summary_v2 import scalar_pb
from tensorboard.summary.writer.event_file_writer import EventFileWriter

from aquarium.agent.errors import RunNotFoundError
from aquarium.collector import Api, Store
from aquarium.workers import enqueue_export, wait_for
from aquarium.workers.queue import enqueue_import
from aquarium.workers.sources import SourceError, import_run_id
from aquarium.workers.sources.delivery import SpoolDelivery
from aquarium.workers.sources.importer import run_import
from aquarium.workers.sources.tensorboard import TensorBoardSource

T0 = 1_700_000_000.0


def write_run(directory: Path, steps: int = 300, hparams: bool = True) -> None:
    """``loss`` as simple_value scalars, ``lr`` as scalars-plugin tensors, hparams, with their own wall times."""
    writer = EventFileWriter(str(directory))
    if hparams:
        summary = hp.hparams_pb({"lr": 0.01, "optimizer": "adam", "layers": 3, "warm": True}, start_time_secs=int(T0))
        writer.add_event(Event(wall_time=T0, summary=summary))
    for step in range(steps):
        value = math.nan if step == 7 else (math.inf if step == 8 else 1.0 / (step + 1))
        writer.add_event(Event(wall_time=T0 + step * 0.5, step=step,
                               summary=Summary(value=[Summary.Value(tag="loss", simple_value=value)])))  # fmt: skip
        if step % 100 == 0:
            writer.add_event(
                Event(wall_time=T0 + step * 0.5 + 0.1, step=step, summary=scalar_pb("lr", 0.1 / (step + 1)))
            )
    writer.close()


def import_offline(location: Path, data_dir: Path) -> list[dict[str, object]]:
    refs = TensorBoardSource().list_runs(str(location), {})
    reports = [run_import("tensorboard", str(location), ref, {}, SpoolDelivery(data_dir), lambda *a: None)
               for ref in refs]  # fmt: skip
    with Store(data_dir) as store:
        store.ingest_spool()
    return reports


def test_scalars_with_steps_wall_times_and_hparams_through_a_worker_twice(
    tmp_path: Path, redis_url: str, connection: redis.Redis, work: Callable[[], None]
) -> None:
    logs = tmp_path / "logs"
    write_run(logs / "exp1" / "alpha")
    write_run(logs / "exp1" / "beta", steps=10, hparams=False)
    data_dir = tmp_path / "data"
    refs = TensorBoardSource().list_runs(str(logs), {})
    assert refs == [str((logs / "exp1" / n).resolve()) for n in ("alpha", "beta")]
    with CollectorThread(redis_url, data_dir):
        for _ in range(2):
            jobs = [enqueue_import(connection, "tensorboard", str(logs), ref, {"api": str(data_dir)}) for ref in refs]
            work()
            outcomes = wait_for(jobs)
            assert [o.status for o in outcomes] == ["finished", "finished"], [o.error for o in outcomes]
    alpha = import_run_id("tensorboard", refs[0])
    with Api(data_dir) as api:
        run = api.run(alpha)
        assert (run["name"], run["experiment"], run["status"]) == ("alpha", "exp1", "completed")
        assert run["params"] == {"lr": 0.01, "optimizer": "adam", "layers": 3, "warm": True}
        assert run["started_at"] == T0 and run["ended_at"] == T0 + 299 * 0.5
        assert run["metrics"]["loss"]["count"] == 300 and run["metrics"]["lr"]["count"] == 3  # one copy
        loss = api.series(alpha, "loss")
        want = np.array([1.0 / (s + 1) for s in range(300)], dtype=np.float32).astype(np.float64)
        want[7], want[8] = math.nan, math.inf
        assert loss.steps.tolist() == list(range(300))
        assert np.array_equal(loss.values, want, equal_nan=True)
        assert loss.times.tolist() == [T0 + s * 0.5 for s in range(300)]
        lr = api.series(alpha, "lr")
        assert lr.steps.tolist() == [0, 100, 200] and lr.values[1] == np.float32(0.1 / 101)
        beta = api.run(import_run_id("tensorboard", refs[1]))
        assert beta["params"] == {} and beta["started_at"] == T0 and beta["ended_at"] == T0 + 9 * 0.5
    report = outcomes[0].report
    assert report is not None and report["fields"]["points"] == {"kept": 303, "not_kept": 0}
    notes = {(n["field"], n["what"]): n for n in report["notes"]}
    assert notes[("points", "NaN")]["count"] == 1 and notes[("points", "Inf")]["count"] == 1


def test_an_aquarium_export_imports_back_with_its_tags_status_and_times(
    source: Path, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    log_dir = tmp_path / "tb"
    job = enqueue_export(connection, "tensorboard", "r1", str(source), {"log_dir": str(log_dir)})
    work()
    assert wait_for([job])[0].status == "finished"
    data_dir = tmp_path / "data"
    (report,) = import_offline(log_dir / "exp1" / "alpha", data_dir)
    with Api(source) as original, Api(data_dir) as imported:
        was, now = original.run("r1"), imported.run(str(report["run"]))
        assert now["status"] == was["status"] == "terminated" and now["ended_at"] == was["ended_at"]
        assert now["tags"] == was["tags"] and now["params"]["lr"] == 0.001 and now["params"]["bad key!"] == "[1, 2]"
        for key in ("loss", "loss/rank1", "odd"):
            rank = 1 if key == "loss/rank1" else 0
            a, b = original.series("r1", key.split("/")[0], rank=rank), imported.series(str(report["run"]), key)
            assert b.steps.tolist() == a.steps.tolist() and b.times.tolist() == a.times.tolist()
            assert np.array_equal(b.values, a.values.astype(np.float32).astype(np.float64), equal_nan=True)


def test_a_corrupt_event_file_fails_naming_it_and_stores_nothing(
    tmp_path: Path, redis_url: str, connection: redis.Redis, work: Callable[[], None]
) -> None:
    logs = tmp_path / "logs"
    write_run(logs / "good")
    write_run(logs / "bad")
    (event_file,) = (logs / "bad").iterdir()
    data = bytearray(event_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte: that record's CRC no longer matches
    event_file.write_bytes(bytes(data))
    with pytest.raises(SourceError, match=f"{event_file}: corrupt event file after"):
        run_import("tensorboard", str(logs), str(logs / "bad"), {}, SpoolDelivery(tmp_path / "x"), lambda *a: None)
    data_dir = tmp_path / "data"
    refs = TensorBoardSource().list_runs(str(logs), {})
    with CollectorThread(redis_url, data_dir):
        jobs = [enqueue_import(connection, "tensorboard", str(logs), ref, {}) for ref in refs]
        work()
        bad, good = wait_for(jobs)
    assert good.status == "finished" and bad.status == "failed"
    assert f"{event_file}: corrupt event file" in (bad.error or "")
    with Api(data_dir) as api:
        assert api.run(import_run_id("tensorboard", refs[1]))["metrics"]["loss"]["count"] == 300
        with pytest.raises(RunNotFoundError):
            api.run(import_run_id("tensorboard", refs[0]))


def test_a_changed_source_is_refused_and_the_imported_run_stays(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / "exp" / "run"
    write_run(logs, steps=5)
    data_dir = tmp_path / "data"
    (first,) = import_offline(logs, data_dir)
    write_run(logs, steps=9)  # a second event file: the run went on logging
    with pytest.raises(SourceError, match="changed since it was imported"):
        run_import("tensorboard", str(logs), str(logs.resolve()), {}, SpoolDelivery(data_dir), lambda *a: None,
                   str(data_dir))  # fmt: skip
    with Api(data_dir) as api:
        assert api.run(str(first["run"]))["metrics"]["loss"]["count"] == 5


def test_a_path_without_event_files_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="no TensorBoard event files"):
        TensorBoardSource().list_runs(str(tmp_path), {})


def test_cli_import_waits_for_the_worker_and_prints_the_report(
    tmp_path: Path, redis_url: str, connection: redis.Redis, work: Callable[[], None]
) -> None:
    import threading

    from click.testing import CliRunner

    from aquarium.cli import cli
    from aquarium.workers import export_queue

    write_run(tmp_path / "logs" / "exp" / "run", steps=20)
    data_dir = tmp_path / "data"
    outputs: list[str] = []
    args = ["import", "tensorboard", str(tmp_path / "logs"), "--data-dir", str(data_dir), "--redis-url", redis_url]
    with CollectorThread(redis_url, data_dir):
        waiting = threading.Thread(target=lambda: outputs.append(CliRunner().invoke(cli, args).output))
        waiting.start()
        wait_until(lambda: export_queue(connection).count or not waiting.is_alive(), "the import is queued")
        work()  # in the main thread (RQ installs signal handlers)
        waiting.join(60)
    (output,) = outputs
    flat = " ".join(output.split())  # the report's title wraps at the terminal's width
    assert "1 run to import from tensorboard" in flat and "→ aquarium: run import-" in flat, output
    assert "(committed)" in flat and "points 21 0" in flat
