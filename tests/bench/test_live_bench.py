"""bench/live.py end to end at a small size (2 ranks × 200 Hz × 2 s, real redis-server, collector
and rank subprocesses): every logged point reaches the subscriber exactly once and the last line
of stdout is the JSON object of headline figures. (Latency figures are printed, not asserted.)"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "live.py"


def test_live_bench_sees_every_point_once_and_ends_with_json() -> None:
    argv = [sys.executable, str(SCRIPT), "--ranks", "2", "--rate", "200", "--seconds", "2"]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    headline = json.loads(proc.stdout.strip().splitlines()[-1])
    assert headline["ranks"] == 2 and headline["dropped"] == 0
    assert headline["logged"] >= 2 * 200  # both ranks logged for ~2 s
    assert headline["received"] == headline["logged"]
    assert all(math.isfinite(headline[k]) and headline[k] >= 0 for k in ("p50_ms", "p99_ms", "max_ms"))
