"""What logging costs the training thread: Aquarium's agent side by side with the peers.

    python bench/agent_overhead.py            # N=20000 tight, N=5000 paced at 1 kHz, 3 repeats
    python bench/agent_overhead.py --quick    # < 30 s: N=5000 / 1000, 1 repeat, fewer peers

Every (logger, mode, repeat) runs in a fresh interpreter (this script re-invoked with
``--worker``); repeats are interleaved. Each step logs {loss, acc, val_loss, lr}; building the
dict is not timed, ``perf_counter_ns`` is read around the logging call(s) only (tensorboard: the
4 ``add_scalar`` calls of a step). One untimed warm-up step precedes the loop.

* tight: N steps back to back, then ``finish()`` is timed at once (N=20000: 80k points pending).
* paced: one step per 1 ms period, the rest of the period in ``time.sleep`` (releases the GIL,
  like waiting on a GPU).
* CPU: user+system of the training process (all its threads) plus, for Aquarium, the
  redis-server it ships to; for peers, their child processes (wandb-core...). From before
  init to after finish, divided by the steps.
* Aquarium ships online to a private redis-server started for each run, with no collector, or
  with a collector consuming in a background process (then finish() waits for its commit).
  Afterwards a burst Collector drains the stream and the points in the store are counted.
* Sustained rate (bench/_sustained.py): the highest rate a loop that only logs keeps up with,
  0 dropped, against a live `aquarium collector`; and a fixed rate through a Redis pause.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from array import array
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _sustained
from _loggers import KEYS, LOGGERS
from _overhead_report import LABELS, report

SCRIPT = Path(__file__).resolve()
PEERS = ("tensorboard", "wandb", "mlflow", "trackio")


def _cpu(pid: int | None) -> float | None:
    """Seconds on CPU of every live thread of ``pid``, in ns resolution (/proc/PID/task/*/schedstat;
    psutil's cpu_times tick at 10 ms, too coarse for µs per step)."""
    if pid is None:
        return None
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                    total += int(f.read().split()[0])
            except (FileNotFoundError, ProcessLookupError):
                pass  # a thread that just ended
    except FileNotFoundError:
        return None
    return total / 1e9


def _children_cpu() -> tuple[dict[int, float], float]:
    """CPU of live descendants by pid, and of reaped children (getrusage)."""
    import resource

    import psutil

    live: dict[int, float] = {}
    for child in psutil.Process().children(recursive=True):
        cpu = _cpu(child.pid)
        if cpu is not None:
            live[child.pid] = cpu
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return live, ru.ru_utime + ru.ru_stime


def _loop(log: Callable[[dict[str, float], int], None], n: int, pace_ns: int) -> "array[int]":
    pc = time.perf_counter_ns
    sleep = time.sleep
    rnd = random.Random(7).random
    durations = array("q", bytes(8 * n))
    for j in range(n):
        step = j + 1
        start = pc()
        x = 1.0 / math.sqrt(step)
        d = {"loss": x + 0.01 * rnd(), "acc": 1.0 - x, "val_loss": 1.1 * x + 0.01 * rnd(), "lr": 1e-3}
        t0 = pc()
        log(d, step)
        durations[j] = pc() - t0
        if pace_ns:
            left = pace_ns - (pc() - start)
            if left > 0:
                sleep(left / 1e9)
    return durations


def worker(spec: dict[str, Any]) -> None:
    if spec["logger"] == "rate":
        return _sustained.rate_worker(spec)
    started = time.perf_counter()
    logger = LOGGERS[spec["logger"]](spec)  # imports the logger's package
    import_s = time.perf_counter() - started
    pace_ns = int(spec["pace_us"] * 1000) if spec["mode"] == "paced" else 0
    n = spec["n"]

    # self: CLOCK_PROCESS_CPUTIME_ID counts every thread, also those that ended before finish
    cpu_self0, redis0, coll0 = time.process_time(), _cpu(spec.get("redis_pid")), _cpu(spec.get("collector_pid"))
    live0, reaped0 = _children_cpu()
    t0 = time.perf_counter()
    log = logger.setup()
    setup_s = time.perf_counter() - t0
    log({"loss": 1.0, "acc": 0.0, "val_loss": 1.1, "lr": 1e-3}, 0)  # warm-up step, not timed
    logger.settle()
    t1 = time.perf_counter()
    durations = _loop(log, n, pace_ns)
    t2 = time.perf_counter()
    logger.finish()
    t3 = time.perf_counter()
    cpu_self1, redis1, coll1 = time.process_time(), _cpu(spec.get("redis_pid")), _cpu(spec.get("collector_pid"))
    live1, reaped1 = _children_cpu()

    children = sum(live1.values()) - sum(v for pid, v in live0.items() if pid in live1) + (reaped1 - reaped0)
    cpu = {
        "self_s": cpu_self1 - cpu_self0,
        "children_s": children,
        "redis_s": None if redis0 is None or redis1 is None else redis1 - redis0,
        "collector_s": None if coll0 is None or coll1 is None else coll1 - coll0,
    }
    cpu["logger_s"] = cpu["self_s"] + cpu["children_s"] + (cpu["redis_s"] or 0.0)
    result = {
        "spec": {k: v for k, v in spec.items() if k != "result_path"},
        **C.latency_stats(durations),
        "n": n,
        "import_s": import_s,
        "setup_s": setup_s,
        "loop_s": t2 - t1,
        "finish_s": t3 - t2,
        "cpu": cpu,
        "cpu_us_per_step": cpu["logger_s"] / n * 1e6,
        "collector_cpu_us_per_step": None if cpu["collector_s"] is None else cpu["collector_s"] / n * 1e6,
        "children_pids": sorted(set(live0) | set(live1)),
        **logger.extra(),
    }
    C.write_result(spec, result)


# ============================================================================================
# a background collector process (for "aquarium + collector")
# ============================================================================================
def serve_collector(spec: dict[str, Any]) -> None:
    import signal

    from aquarium.collector import Collector, CollectorSettings

    collector = Collector(
        CollectorSettings(
            redis_url=spec["redis_url"], data_dir=Path(spec["data_dir"]), consumer="background", ingest_spool=False
        )
    )
    signal.signal(signal.SIGTERM, lambda *_: collector.stop())
    print("ready", flush=True)
    collector.run()
    collector.close()


def start_collector(redis_url: str, data_dir: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        C.worker_argv(SCRIPT, "--serve-collector", {"redis_url": redis_url, "data_dir": str(data_dir)}),
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"background collector did not start: {line!r}")
    return proc


def stop_collector(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def count_persisted(redis_url: str, data_dir: Path, run_id: str) -> dict[str, Any]:
    """Drain what is left in the stream with a burst Collector, then count the run's points."""
    from aquarium.collector import Collector, CollectorSettings

    collector = Collector(
        CollectorSettings(redis_url=redis_url, data_dir=data_dir, consumer="verify", ingest_spool=False)
    )
    try:
        collector.run(burst=True)
        run = collector.store.get_run(run_id)
        points = sum(m["count"] for m in run["metrics"].values())
        steps = {k: len(collector.store.read_series(run_id, k)) for k in run["metrics"]}
    finally:
        collector.close()
    return {"points": points, "distinct_steps": steps}


# ============================================================================================
# orchestration
# ============================================================================================
def run_job(job: dict[str, Any], repeat: int, args: argparse.Namespace) -> dict[str, Any]:
    from aquarium.cli.redis_server import RedisServer

    tmp = Path(tempfile.mkdtemp(prefix="aqbench-agent-"))
    n = args.n if job["mode"] == "tight" else args.n_paced
    run_id = f"bench-{job['mode']}-{repeat}"
    spec = {
        "logger": job["logger"],
        "mode": job["mode"],
        "n": n,
        "pace_us": args.pace_us,
        "tmp": str(tmp),
        "run_id": run_id,
        "collector": job.get("collector", False),
    }
    env = {"AQUARIUM_DATA_DIR": str(tmp / "agent"), "WANDB_SILENT": "true", "PYTHONHASHSEED": "0"}
    server = collector = None
    try:
        if job["logger"] == "aquarium":
            server = RedisServer(binary=C.REDIS_BINARY, data_dir=tmp / "redis").start()
            assert server.process is not None
            spec.update(redis_url=server.url, redis_pid=server.process.pid)
            if job.get("collector"):
                collector = start_collector(server.url, tmp / "store")
                spec["collector_pid"] = collector.pid
        result = C.run_worker(SCRIPT, spec, tmp / "result.json", timeout=args.timeout, env=env)
        if collector is not None:
            stop_collector(collector)
        if server is not None and "error" not in result:
            result["persisted"] = count_persisted(server.url, tmp / "store", run_id)
            result["expected_points"] = (n + 1) * len(KEYS)
        return result
    finally:
        if collector is not None:
            stop_collector(collector)
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def job_key(job: dict[str, Any]) -> str:
    return job["logger"] + ("+collector" if job.get("collector") else "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="under 30 s: smaller N, 1 repeat, tensorboard, wandb and trackio"
    )
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 3, quick 1)")
    parser.add_argument("--n", type=int, help="tight-loop steps (default 20000, quick 5000)")
    parser.add_argument("--n-paced", type=int, help="paced steps (default 5000, quick 1000)")
    parser.add_argument("--pace-us", type=float, default=1000.0, help="step period of the paced loop (µs)")
    parser.add_argument(
        "--peers", help=f"comma-separated subset of {','.join(PEERS)} (default all; quick: tensorboard,wandb,trackio)"
    )
    parser.add_argument("--no-rate", action="store_true", help="skip the sustained logging rate trials")
    parser.add_argument("--timeout", type=float, default=1800.0, help="seconds before a worker is abandoned")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--serve-collector", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    if args.serve_collector:
        return serve_collector(json.loads(args.serve_collector))

    args.repeats = args.repeats or (1 if args.quick else 3)
    args.n = args.n or (5000 if args.quick else 20000)
    args.n_paced = args.n_paced or (1000 if args.quick else 5000)
    default_peers = "tensorboard,wandb,trackio" if args.quick else ",".join(PEERS)
    peers = [p for p in (args.peers or default_peers).split(",") if p]
    unknown = set(peers) - set(PEERS)
    if unknown:
        parser.error(f"unknown peers: {', '.join(sorted(unknown))}")

    jobs: list[dict[str, Any]] = []
    for mode in ("tight", "paced"):
        jobs.append({"logger": "null", "mode": mode})
        jobs.append({"logger": "aquarium", "mode": mode})
        if mode == "tight" or not args.quick:
            jobs.append({"logger": "aquarium", "mode": mode, "collector": True})
        jobs.extend({"logger": p, "mode": mode} for p in peers)

    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    started = time.perf_counter()
    for repeat, job in C.interleave(jobs, args.repeats):
        C.progress(f"repeat {repeat + 1}/{args.repeats}: {LABELS[job_key(job)]}, {job['mode']}")
        result = run_job(job, repeat, args)
        if "error" in result:
            C.progress(f"  failed: {result['error']}")
        results.setdefault((job_key(job), job["mode"]), []).append(result)
    sustained = None if args.no_rate else _sustained.measure(SCRIPT, args.quick)
    total_s = time.perf_counter() - started
    report(results, sustained, peers, args, total_s)


if __name__ == "__main__":
    main()
