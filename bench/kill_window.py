"""What a SIGKILLed training process loses: the RAM-only window, measured.

    python bench/kill_window.py            # 8 kills a mode
    python bench/kill_window.py --quick    # < 30 s: 3 kills a mode

A training process logs one step every 100 µs (10k steps/s, 2 keys) through the real agent to a
private redis-server with a collector process consuming, and writes the last step it logged into
a shared 8-byte file after each call. At a random moment it is SIGKILLed: no finish(), no atexit.
The stream and the dead process's spool are then drained into the store, and what is missing
from the end of the series is the loss: points the process had accepted but not yet handed to
Redis or the spool. ``durable=True`` writes each batch to the spool (fsync) before shipping it.
"""

from __future__ import annotations

import argparse
import json
import mmap
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _processes as P

SCRIPT = Path(__file__).resolve()
MODES = ("default", "durable")
PERIOD_S = 100e-6
KEYS = 2


def worker(spec: dict[str, Any]) -> None:
    """Log paced steps until killed, publishing the last logged step in the shared file."""
    import aquarium.agent as aq

    with open(spec["progress"], "r+b") as f:
        progress = mmap.mmap(f.fileno(), 8)
    run = aq.init(
        "bench",
        run_id=spec["run_id"],
        redis_url=spec["redis_url"],
        data_dir=spec["data_dir"],
        durable=spec["mode"] == "durable",
    )
    print("ready", flush=True)
    step, next_at = 0, time.perf_counter()
    while True:
        run.log({"loss": 1.0 / (step + 1), "acc": step * 1e-6}, step=step)
        progress[:8] = struct.pack("<q", step)
        step += 1
        next_at += PERIOD_S
        while time.perf_counter() < next_at:
            pass


def trial(mode: str, index: int, redis_url: str, tmp: Path, rng: random.Random) -> dict[str, Any]:
    data_dir = tmp / f"{mode}-{index}"
    progress = tmp / f"{mode}-{index}.progress"
    progress.write_bytes(struct.pack("<q", -1))
    run_id = f"kill-{mode}-{index}"
    spec = {
        "run_id": run_id,
        "redis_url": redis_url,
        "data_dir": str(data_dir),
        "mode": mode,
        "progress": str(progress),
    }
    child = subprocess.Popen(C.worker_argv(SCRIPT, "--worker", spec), stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None and child.stdout.readline().strip() == "ready"
    time.sleep(rng.uniform(0.6, 1.4))
    child.send_signal(signal.SIGKILL)
    child.wait()
    (logged_last,) = struct.unpack("<q", progress.read_bytes()[:8])
    return {"run_id": run_id, "data_dir": data_dir, "logged": logged_last + 1}


def stored_prefix(store_dir: Path, run_id: str, spool_dir: Path) -> int:
    """Steps 0..n-1 of the killed run in the store, once its spool is ingested too: n."""
    from aquarium.agent.errors import RunNotFoundError
    from aquarium.collector import Store

    with Store(store_dir) as store:
        store.ingest_spool(spool_dir)
        try:
            steps = store.read_series(run_id, "loss").steps.tolist()
        except RunNotFoundError:  # no batch of this run ever arrived
            return 0
    prefix = 0
    while prefix < len(steps) and steps[prefix] == prefix:
        prefix += 1
    return prefix


def measure(kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    tmp = Path(tempfile.mkdtemp(prefix="aq-kill-"))
    server = P.redis_server(tmp / "redis").start()
    collector = P.start_collector(server.url, tmp / "store")
    results: dict[str, list[dict[str, Any]]] = {mode: [] for mode in MODES}
    try:
        for index in range(kills):
            for mode in MODES if index % 2 == 0 else reversed(MODES):
                results[mode].append(trial(mode, index, server.url, tmp, rng))
        time.sleep(1.0)  # the collector commits what reached Redis
        P.stop_collector(collector)
        P.drain(server.url, tmp / "store")
        for trials in results.values():
            for t in trials:  # what Redis delivered is in the store already; add what the run spooled
                t["stored_steps"] = stored_prefix(tmp / "store", t["run_id"], t["data_dir"] / "spool")
                t["lost_steps"] = t["logged"] - t["stored_steps"]
    finally:
        P.stop_collector(collector)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
    return summarize(results)


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for mode, trials in results.items():
        lost = [t["lost_steps"] for t in trials]
        summary[mode] = {
            "kills": len(trials),
            "logged_steps": sum(t["logged"] for t in trials),
            "lost_steps_median": C.median(lost),
            "lost_steps_max": max(lost),
            "window_ms_median": C.median(lost) * PERIOD_S * 1e3,
            "window_ms_max": max(lost) * PERIOD_S * 1e3,
            "never_negative": min(lost) >= 0,
        }
    return summary


def report(summary: dict[str, Any], wall: float, quick: bool) -> None:
    rows = [
        (
            mode,
            str(s["kills"]),
            f"{s['logged_steps']:,}",
            C.fmt(s["lost_steps_median"]),
            str(s["lost_steps_max"]),
            C.fmt(s["window_ms_median"]),
            C.fmt(s["window_ms_max"]),
        )
        for mode, s in summary.items()
    ]
    columns = ("mode", "kills", "steps logged", "steps lost (median)", "max", "window ms (median)", "max ms")
    C.console().print(C.table("SIGKILL of a training process logging 10k steps/s (2 keys)", columns, rows))
    line = {"bench": "kill_window", "quick": quick, "wall_s": round(wall, 1)}
    for mode, s in summary.items():
        line[f"{mode}_window_ms_median"] = round(s["window_ms_median"], 1)
        line[f"{mode}_window_ms_max"] = round(s["window_ms_max"], 1)
        line[f"{mode}_ok"] = s["never_negative"]
    print(json.dumps(line))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 kills a mode (< 30 s)")
    parser.add_argument("--kills", type=int, default=None, help="kills a mode (default 8, 3 with --quick)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(json.loads(args.worker))
        return
    started = time.perf_counter()
    summary = measure(args.kills or (3 if args.quick else 8), args.seed)
    report(summary, time.perf_counter() - started, args.quick)
    if not all(s["never_negative"] for s in summary.values()):
        sys.exit(1)


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
