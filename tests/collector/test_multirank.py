"""Every rank of a torchrun- or SLURM-launched job joins one run, through real processes and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aquarium.collector import Collector, CollectorSettings, Store

RANK_SCRIPT = """
import aquarium.agent as aq
run = aq.init(experiment="ddp", name="resnet-ddp", config={"lr": 0.1})
for step in range(2000):
    run.log({"loss": float(step * 10 + run.rank)}, step=step)
report = run.finish()
print(run.id, run.rank, report.points, report.dropped_points)
"""


@pytest.mark.parametrize("launcher", ["torchrun", "slurm"])
def test_ranks_from_launcher_variables_join_one_run(launcher: str, redis_url: str, data_dir: Path) -> None:
    world = 4
    procs = []
    for rank in range(world):
        env = dict(os.environ, AQUARIUM_REDIS_URL=redis_url, AQUARIUM_DATA_DIR=str(data_dir))
        if launcher == "torchrun":
            env.update(TORCHELASTIC_RUN_ID="f00d", RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
        else:
            env.update(SLURM_JOB_ID="4242", SLURM_PROCID=str(rank), SLURM_NTASKS=str(world))
        procs.append(subprocess.Popen([sys.executable, "-c", RANK_SCRIPT], env=env, stdout=subprocess.PIPE, text=True))
    outputs = [p.communicate(timeout=120)[0].split() for p in procs]
    assert all(p.returncode == 0 for p in procs)
    run_ids = {out[0] for out in outputs}
    expected_id = "torchrun-f00d" if launcher == "torchrun" else "slurm-4242"
    assert run_ids == {expected_id}
    assert sorted(int(out[1]) for out in outputs) == list(range(world))
    assert all(out[2] == "2000" and out[3] == "0" for out in outputs)

    collector = Collector(CollectorSettings.from_env(redis_url=redis_url, data_dir=data_dir))
    collector.run(burst=True)
    collector.close()
    with Store(data_dir) as store:
        store.ingest_spool()
        run = store.get_run(expected_id)
        assert run["ranks"] == list(range(world)) and run["world_size"] == world
        assert run["name"] == "resnet-ddp" and run["status"] == "completed"
        assert run["metrics"]["loss"]["count"] == 2000 * world
        for rank in range(world):
            assert np.array_equal(store.read_series(expected_id, "loss", rank).values, np.arange(2000) * 10.0 + rank)
        agg = store.read_aggregate(expected_id, "loss")
        assert np.array_equal(agg.mean, np.arange(2000) * 10.0 + 1.5)
        assert np.array_equal(agg.min, np.arange(2000) * 10.0) and np.array_equal(agg.count, np.full(2000, world))
