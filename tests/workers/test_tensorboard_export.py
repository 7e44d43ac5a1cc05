"""TensorBoard event files, read back with TensorBoard's EventAccumulator."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import redis
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.plugins.hparams import plugin_data_pb2

from aquarium.workers import enqueue_export, wait_for


def _read(directory: Path) -> EventAccumulator:
    acc = EventAccumulator(str(directory), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_and_hparams_read_back_and_a_reexport_replaces(
    source: Path, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    log_dir = tmp_path / "tb"
    for _ in range(2):
        job = enqueue_export(connection, "tensorboard", "r1", str(source), {"log_dir": str(log_dir)})
        work()
        (o,) = wait_for([job])
        assert o.status == "finished", o.error
    run_dir = log_dir / "exp1" / "alpha"
    assert o.report is not None and o.report["destination"] == str(run_dir)
    assert [p.name for p in log_dir.joinpath("exp1").iterdir()] == ["alpha"]  # no temporary left
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 1  # replaced, not appended
    acc = _read(run_dir)
    loss = acc.Scalars("loss")
    assert [e.step for e in loss] == list(range(500))
    assert all(math.isclose(e.value, e.step / 7, rel_tol=1e-6) for e in loss)
    assert loss[3].wall_time == 1.7e9 + 3e-3
    assert [e.value for e in acc.Scalars("loss/rank1")] == [3.0, 4.0, 5.0]
    odd = [e.value for e in acc.Scalars("odd")]
    assert odd[0] == 1.0 and math.isnan(odd[1]) and odd[2] == math.inf and odd[3] == -math.inf
    content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    assert hparams["lr"].number_value == 0.001 and hparams["bad key!"].string_value == "[1, 2]"
    assert hparams["tags.team"].string_value == "vision" and hparams["aquarium.status"].string_value == "terminated"
    notes = {(n["field"], n["what"]): n for n in o.report["notes"]}
    assert notes[("points", "float32")]["count"] == 507 and notes[("points", "Inf")]["count"] == 2


def test_an_unwritable_log_dir_fails_with_the_reason(
    source: Path, connection: redis.Redis, work: Callable[[], None], tmp_path: Path
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    job = enqueue_export(connection, "tensorboard", "r2", str(source), {"log_dir": str(blocker / "tb")})
    work()
    (o,) = wait_for([job])
    assert o.status == "failed"
    assert f"cannot write under {blocker / 'tb'}" in (o.error or "")
