"""bench/artifacts.py --quick end to end (a real redis-server and `aquarium collector
--http-port`): it runs, every upload completes, the training process's memory does not follow the file size,
and the last line of stdout is the JSON object of headline figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "artifacts.py"

HEADLINE = {
    "bench", "mode", "sizes_mb", "cp_mb_s", "upload_mb_s", "upload_over_cp", "upload_busy_mb_s", "call_ms",
    "rss_growth_mb", "rss_peak_mb", "log_idle_median_us", "log_uploading_median_us", "log_idle_p99_us",
    "log_uploading_p99_us", "log_idle_mean_us", "log_uploading_mean_us", "uploaded", "failed", "dropped_points",
    "wall_s",
}  # fmt: skip


@pytest.mark.timeout(240)
def test_artifacts_bench_quick(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=230, cwd=tmp_path
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    head = json.loads(proc.stdout.strip().splitlines()[-1])
    assert HEADLINE <= head.keys(), HEADLINE - head.keys()
    assert head["bench"] == "artifacts" and head["mode"] == "quick" and head["sizes_mb"] == [100.0, 25.0]
    assert head["uploaded"] == 4 and head["failed"] == 0 and head["dropped_points"] == 0
    # streamed in 1 MiB pieces: uploading 100 MB grows the training process by far less than the file
    assert all(0 <= growth < 25 for growth in head["rss_growth_mb"]), head["rss_growth_mb"]
    for name in ("cp_mb_s", "upload_mb_s", "upload_busy_mb_s", "log_idle_median_us", "log_uploading_median_us"):
        assert head[name] is not None and head[name] > 0, name
    assert "Artifact upload through a real collector (quick)" in proc.stdout
