"""bench/artifact_store.py --quick end to end (a real `aquarium collector --http-port`, 256 MiB): it
runs, the bytes are stored once for 8 ranks, and its last line is the JSON of headline figures."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "artifact_store.py"


def test_the_quick_artifact_bench_runs_and_reports() -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), "--quick"], capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stdout + result.stderr
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert figures["bench"] == "artifact_store" and figures["mib"] == 256 and figures["blobs_on_disk"] == 1
    for key in ("upload_mb_per_s", "download_mb_per_s", "collector_rss_before_mib", "collector_rss_peak_mib"):
        assert figures[key] > 0
