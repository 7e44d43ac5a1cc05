"""bench/export.py end to end at its smallest size (--smoke: a few thousand points per target, a
real `mlflow server`, wandb offline): it runs, MLflow holds every point it was sent (the bench
checks that itself), and the last line of stdout is the JSON object of headline figures."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "export.py"


@pytest.mark.timeout(240)
def test_export_bench_smoke(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "WANDB_API_KEY"} | {"TMPDIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=230, cwd=tmp_path, env=env
    )
    assert done.returncode == 0, done.stderr[-3000:]
    headline = json.loads(done.stdout.strip().splitlines()[-1])
    assert headline["bench"] == "export" and headline["mode"] == "smoke"
    for target in ("mlflow", "tensorboard", "wandb"):
        assert headline[f"{target}_points_per_s"] > 0 and headline[f"{target}_user_script_points_per_s"] > 0
        assert headline[f"{target}_ratio"] > 0
    assert headline["parallel_1_workers_s"] > 0 and headline["parallel_4_workers_s"] > 0  # every job finished
    assert headline["mlflow_reexport_points_per_s"] > 0 and headline["mlflow_goal_50k_met"] in (True, False)
    assert "Export throughput" in done.stdout
