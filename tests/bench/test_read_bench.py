"""bench/read.py end to end at its smallest size (--smoke: 10k points, 200 runs, a real
`aquarium api` and `mlflow server`): it runs, both systems return the same runs, and the last
line of stdout is the JSON object of headline figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "read.py"

HEADLINE = {
    "bench",
    "mode",
    "points",
    "runs",
    "series_store_ms",
    "series_api_ms",
    "series_http_ms",
    "series_mlflow_ms",
    "series_mlflow_points",
    "series_mlflow_over_api",
    "search_ms",
    "search_mlflow_ms",
    "runs_df_ms",
    "runs_df_mlflow_ms",
    "history_local_ms",
    "history_api_ms",
    "same_answers",
    "targets_met",
    "wall_s",
}


@pytest.mark.timeout(240)
def test_read_bench_smoke(tmp_path: Path) -> None:
    pytest.importorskip("mlflow")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--smoke"], capture_output=True, text=True, timeout=230, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    head = json.loads(proc.stdout.strip().splitlines()[-1])
    assert HEADLINE <= head.keys(), HEADLINE - head.keys()
    assert head["bench"] == "read" and head["mode"] == "smoke"
    assert head["same_answers"] is True
    assert head["series_mlflow_points"] == head["points"]  # MLflow returns every point
    for name in ("series_store_ms", "series_api_ms", "series_http_ms", "search_ms", "runs_df_ms", "history_api_ms"):
        assert head[name] is not None and head[name] > 0, name
    assert set(head["targets_met"]) == {
        "series_http_ms",
        "search_ms",
        "history_local_ms",
        "history_http_ms",
        "same_answers",
    }
    assert "1. A 10,000-point series" in proc.stdout
