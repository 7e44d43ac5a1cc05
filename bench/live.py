"""Live latency: from ``run.log()`` to a subscriber holding the point, with 8 ranks at 1 kHz.

    python bench/live.py            # 8 ranks × 1 kHz × 60 s (~80 s)
    python bench/live.py --quick    # 8 ranks × 1 kHz × 10 s (< 30 s)

Real processes only: a private redis-server, the production ``aquarium collector`` command
(which publishes each commit on pub/sub), 8 rank subprocesses of one run (``RANK`` 0–7, the
real agent, one metric logged at 1 kHz each, in 10 ms bursts like short training steps), and a
subscriber in this process: ``aquarium.collector.live.follow``, the same follower the
dashboard and ``aquarium tail`` use. Each point carries the wall time its ``log()`` call was
made (the agent stamps it), so its latency is the subscriber's clock when it receives the point
minus that time; all processes share this machine's clock.

Reported: p50 / p90 / p99 / max over every point, how many arrived through the live stream vs
from the follower's backfill (the store), and whether every logged point was seen exactly once.
For scale (not measured here, see the research notes): Trackio polls every 1 s after a 0.5 s
client batch, W&B shows points after ~15 s, MLflow's UI polls every 30 s.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import console, emit_json, fmt, progress, table, targets_table
from _processes import kill, redis_server, start_collector

RUN_ID = "live-bench"
KEY = "loss"
BURST_S = 0.01
TARGET_P50_MS, TARGET_P99_MS = 150.0, 500.0


def run_rank(spec: dict[str, Any]) -> None:
    """One rank: log KEY at ``rate`` steps/s for ``seconds``, then finish."""
    import aquarium.agent as aq

    run = aq.init("live-bench", run_id=RUN_ID, rank=spec["rank"], world_size=spec["world_size"],
                  redis_url=spec["redis_url"], data_dir=spec["data_dir"])  # fmt: skip
    rate, step = spec["rate"], 0
    started = time.monotonic()
    end = started + spec["seconds"]
    while time.monotonic() < end:
        due = int((time.monotonic() - started) * rate) + 1
        while step < due:
            run.log({KEY: float(step)}, step=step)
            step += 1
        time.sleep(BURST_S)
    report = run.finish()
    Path(spec["result_path"]).write_text(json.dumps({"logged": step, "dropped": report.dropped_points}))


class Subscriber(threading.Thread):
    """Follows the run and records, per point, (rank, step, latency in s, came live)."""

    def __init__(self, redis_url: str, data_dir: Path) -> None:
        super().__init__(daemon=True)
        from aquarium.collector.client import Api

        self.redis_url, self.api = redis_url, Api(data_dir)
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.seen: dict[int, int] = {}  # rank -> points received

    def run(self) -> None:
        import numpy as np

        from aquarium.collector import live

        for item in live.follow(self.redis_url, RUN_ID, source=self.api, stop=self.stop, poll=0.2):
            now = time.time()
            if not isinstance(item, live.Points) or item.key != KEY:
                continue
            self.seen[item.rank] = self.seen.get(item.rank, 0) + len(item)
            self.latencies.extend((now - np.asarray(item.times)).tolist())

    def counts(self) -> int:
        return sum(self.seen.values())


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def bench(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="aquarium-live-bench-"))
    data_dir = work / "data"
    server = redis_server(work / "redis")
    server.start()
    redis_url = server.url
    collector = start_collector(redis_url, data_dir, log_path=work / "collector.log")
    ranks: list[subprocess.Popen[bytes]] = []
    subscriber: Subscriber | None = None
    try:
        _wait_for_store(data_dir)
        subscriber = Subscriber(redis_url, data_dir)
        subscriber.start()
        progress(f"{args.ranks} ranks × {args.rate} Hz × {args.seconds:g} s")
        for rank in range(args.ranks):
            spec = {
                "rank": rank, "world_size": args.ranks, "redis_url": redis_url, "data_dir": str(data_dir),
                "rate": args.rate, "seconds": args.seconds, "result_path": str(work / f"rank{rank}.json"),
            }  # fmt: skip
            env = {**os.environ, "AQUARIUM_RUN_ID": RUN_ID, "RANK": str(rank)}
            ranks.append(subprocess.Popen([sys.executable, __file__, "--rank", json.dumps(spec)], env=env))
        for proc in ranks:
            proc.wait(timeout=args.seconds + 120)
        results = [json.loads((work / f"rank{r}.json").read_text()) for r in range(args.ranks)]
        logged = sum(r["logged"] for r in results)
        dropped = sum(r["dropped"] for r in results)
        deadline = time.monotonic() + 30
        while subscriber.counts() < logged - dropped and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if subscriber is not None:
            subscriber.stop.set()
        for proc in ranks:
            kill(proc)
        collector.terminate()
        try:
            collector.wait(timeout=30)
        except subprocess.TimeoutExpired:
            kill(collector)
        server.stop()
    lat = subscriber.latencies
    return {
        "ranks": args.ranks,
        "rate_hz": args.rate,
        "seconds": args.seconds,
        "logged": logged,
        "dropped": dropped,
        "received": subscriber.counts(),
        "p50_ms": percentile(lat, 0.50) * 1e3,
        "p90_ms": percentile(lat, 0.90) * 1e3,
        "p99_ms": percentile(lat, 0.99) * 1e3,
        "max_ms": max(lat) * 1e3 if lat else float("nan"),
        "work_dir": str(work),
    }


def _wait_for_store(data_dir: Path) -> None:
    """The collector has created and migrated the store (the subscriber's backfill reads it)."""
    from aquarium.agent.errors import AquariumError
    from aquarium.collector.client import Api

    deadline = time.monotonic() + 60
    while True:
        try:
            Api(data_dir).close()
            return
        except AquariumError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def report(out: dict[str, Any]) -> None:
    c = console()
    c.print(
        table(
            f"log() → subscriber latency, {out['ranks']} ranks × {out['rate_hz']} Hz × {out['seconds']:g} s",
            ["measure", "value"],
            [
                ("points logged", f"{out['logged']:,}"),
                ("points reported dropped", f"{out['dropped']:,}"),
                ("points received by the subscriber", f"{out['received']:,}"),
                ("p50", f"{fmt(out['p50_ms'])} ms"),
                ("p90", f"{fmt(out['p90_ms'])} ms"),
                ("p99", f"{fmt(out['p99_ms'])} ms"),
                ("max", f"{fmt(out['max_ms'])} ms"),
            ],
            caption="For scale: Trackio polls every 1 s after a 0.5 s client batch; W&B ~15 s; MLflow's UI 30 s.",
        )
    )
    c.print(
        targets_table(
            [
                ("live latency p50", "≤ 150 ms", f"{fmt(out['p50_ms'])} ms", out["p50_ms"] <= TARGET_P50_MS),
                ("live latency p99", "≤ 500 ms", f"{fmt(out['p99_ms'])} ms", out["p99_ms"] <= TARGET_P99_MS),
                (
                    "every stored point seen once",
                    f"{out['logged'] - out['dropped']:,}",
                    f"{out['received']:,}",
                    out["received"] == out["logged"] - out["dropped"],
                ),
            ]  # fmt: skip
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="10 s of logging (< 30 s in all)")
    parser.add_argument("--ranks", type=int, default=8)
    parser.add_argument("--rate", type=int, default=1000, help="steps per second per rank")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--rank", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank:
        run_rank(json.loads(args.rank))
        return
    args.seconds = args.seconds or (10.0 if args.quick else 60.0)
    out = bench(args)
    report(out)
    emit_json({k: v for k, v in out.items() if k != "work_dir"})


if __name__ == "__main__":
    main()
