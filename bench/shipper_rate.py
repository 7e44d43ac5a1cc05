"""How fast the shipper drains a loop that only logs, and what it drops (nothing, it should).

    python bench/shipper_rate.py            # 5M calls a case, Redis paused 6 s
    python bench/shipper_rate.py --quick    # < 30 s: 1.5M calls a case, Redis paused 2 s

Each case runs in a fresh interpreter against a private redis-server with a collector process
consuming: a tight loop of ``run.log({"a", "b", "c", "d"})`` (4 points a call), timed around the
loop only; then ``finish()`` (which waits for the collector's commit and spools the rest).
Afterwards a burst collector drains the stream and ingests the spool, and the run's points in
the store are counted: ``logged = stored + dropped`` must hold in every case.

* ``online``: Redis answers all along.
* ``paused``: Redis (and so the collector) is frozen with SIGSTOP for a while mid-loop: the
  shipper must spill to the spool instead of dropping.
* ``durable``: ``durable=True``, every batch fsynced to the spool before it is shipped.

The backlog column is the largest number of calls waiting in the agent's queue (sampled every
50 ms): a shipper that keeps up keeps it near one flush interval's worth.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _processes as P

SCRIPT = Path(__file__).resolve()
CASES = ("online", "paused", "durable")


def worker(spec: dict[str, Any]) -> None:
    import aquarium.agent as aq

    run = aq.init(
        "bench",
        run_id=spec["run_id"],
        redis_url=spec["redis_url"],
        data_dir=spec["data_dir"],
        **({"durable": True} if spec["case"] == "durable" else {}),
        commit_wait=30.0,
        finish_timeout=120.0,
    )
    queue = run._shipper.points
    backlog = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.05):
            backlog[0] = max(backlog[0], len(queue))

    sampler = threading.Thread(target=sample, daemon=True)
    n, log = spec["n"], run.log
    if spec["case"] == "paused":
        redis_pid = spec["redis_pid"]
        threading.Timer(0.3, os.kill, (redis_pid, signal.SIGSTOP)).start()
        threading.Timer(0.3 + spec["pause_s"], os.kill, (redis_pid, signal.SIGCONT)).start()
    sampler.start()
    started = time.perf_counter()
    for i in range(n):
        log({"a": 1.0, "b": 2.0, "c": 3.0, "d": float(i)})
    loop_s = time.perf_counter() - started
    done.set()
    started = time.perf_counter()
    report = run.finish()
    finish_s = time.perf_counter() - started
    stats = run.stats
    C.write_result(
        spec,
        {
            "logged": 4 * n,
            "loop_s": loop_s,
            "points_per_s": 4 * n / loop_s,
            "finish_s": finish_s,
            "dropped": report.dropped_points,
            "backlog_calls": backlog[0],
            "spooled_batches": stats.batches_spooled,
            "redis_errors": stats.redis_errors,
        },
    )


def run_case(case: str, n: int, pause_s: float) -> dict[str, Any]:
    from aquarium.cli.redis_server import RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="aqbench-shipper-"))
    server = RedisServer(binary=C.REDIS_BINARY, data_dir=tmp / "redis").start()
    collector = None
    try:
        assert server.process is not None
        store = tmp / "store"
        spec = {"case": case, "n": n, "pause_s": pause_s, "run_id": f"rate-{case}", "redis_url": server.url}
        spec.update(data_dir=str(store), redis_pid=server.process.pid)
        collector = P.start_collector(server.url, store)  # `aquarium collector`, consuming all along
        result = C.run_worker(SCRIPT, spec, tmp / "result.json", timeout=300)
        P.stop_collector(collector)
        if "error" not in result:
            P.drain(server.url, store)  # what the stream still holds, and the spool
            result["stored"] = P.stored_points(store, spec["run_id"])
        return result
    finally:
        P.kill(collector)
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="1.5M calls a case, under 30 s")
    parser.add_argument("--n", type=int, help="calls a case (4 points each)")
    parser.add_argument("--pause", type=float, help="seconds Redis is frozen in the 'paused' case")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    n = args.n or (1_500_000 if args.quick else 5_000_000)
    pause_s = args.pause or (2.0 if args.quick else 6.0)
    results = {}
    for case in CASES:
        C.progress(f"{case}: {n:,} calls")
        results[case] = run_case(case, n, pause_s)
    rows = []
    for case, r in results.items():
        if "error" in r:
            rows.append((case, r["error"], "", "", "", "", "", ""))
            continue
        balanced = r["stored"] + r["dropped"] == r["logged"]
        rows.append(
            (
                case,
                C.fmt(r["points_per_s"]),
                C.fmt(r["logged"]),
                C.fmt(r["stored"]),
                C.fmt(r["dropped"]),
                "yes" if balanced else "[red]NO[/red]",
                C.fmt(r["backlog_calls"]),
                C.fmt(r["finish_s"]),
            )
        )
    C.console().print(
        C.table(
            f"Shipper rate: a logging-only loop, 4 keys a call, {n:,} calls (Redis paused {pause_s:g} s in 'paused')",
            [
                "case",
                "points/s logged",
                "logged",
                "stored",
                "dropped",
                "logged = stored + dropped",
                "max backlog (calls)",
                "finish s",
            ],
            rows,
        )
    )
    C.emit_json(
        C.clean_nan(
            {
                "calls": n,
                "pause_s": pause_s,
                **{
                    f"{case}_{key}": r.get(src)
                    for case, r in results.items()
                    for key, src in (("points_per_s", "points_per_s"), ("dropped", "dropped"), ("stored", "stored"))
                },
            }
        )
    )


if __name__ == "__main__":
    main()
