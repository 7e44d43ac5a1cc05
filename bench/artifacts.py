"""Artifact uploads as the training process sees them: throughput against `cp`, its memory, and
what an upload costs the training thread's ``log()`` (the collector's side: bench/artifact_store.py).

    python bench/artifacts.py            # a 1 GB file (and 256 MB, for memory), ~1-2 min
    python bench/artifacts.py --quick    # < 30 s: 100 MB (and 25 MB)

Everything is real: a private redis-server, `aquarium collector --http-port 0` (it advertises its
API in Redis; the agent is given only the Redis URL), and the training process is a fresh
interpreter (this script with ``--worker``) using the public agent API. Per size, two files of
random bytes (no dedup between them) on the same disk as the collector's data dir:

* cp: ``cp A A.copy`` of the same file on the same disk (page cache warm for both), timed.
* idle upload: ``run.log_artifact(A)`` while the training thread sleeps; timed from the call to
  ``run.stats.artifacts_uploaded`` (hash, link, PUT, the collector's verify and store).
  Throughput = size / that time; the ratio is throughput / cp's.
* log() cost: the tight loop of bench/agent_overhead.py ({loss, acc, val_loss, lr} a step,
  ``perf_counter_ns`` around ``log()`` only): N steps idle, then while ``log_artifact(B)``
  uploads (until it completes); median / p99 / mean per call.
* memory: this process samples the worker's RSS (psutil) every 5 ms; peak during the idle upload
  above the RSS just before the call, for both sizes: it must not grow with the file.

Prints tables, then one JSON object with the headline figures as the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

SCRIPT = Path(__file__).resolve()
MB = 1 << 20
SIZES = {"full": (1024 * MB, 256 * MB), "quick": (100 * MB, 25 * MB)}
IDLE_STEPS = 20_000
TIMED_SLOTS = 2_000_000  # log() latencies kept during an upload (preallocated: no RSS growth)
AQUARIUM = [sys.executable, "-P", "-c", "from aquarium.cli import main; main()"]


# ============================================================================================
# the training process
# ============================================================================================
def worker(spec: dict[str, Any]) -> None:
    import math
    import random

    import aquarium.agent as aq

    pc = time.perf_counter_ns
    rnd = random.Random(7).random
    durations = array("q", bytes(8 * TIMED_SLOTS))
    run = aq.init(
        experiment="bench-artifacts",
        run_id=spec["run"],
        redis_url=spec["redis_url"],
        data_dir=spec["data_dir"],
        finish_timeout=600,
    )
    run.log({"loss": 1.0, "acc": 0.0, "val_loss": 1.1, "lr": 1e-3}, step=0)  # warm-up, not timed
    step = 0

    def timed_loop(until: Any, limit: int) -> int:
        nonlocal step
        n = 0
        while n < limit and not until():
            step += 1
            x = 1.0 / math.sqrt(step)
            d = {"loss": x + 0.01 * rnd(), "acc": 1.0 - x, "val_loss": 1.1 * x + 0.01 * rnd(), "lr": 1e-3}
            t0 = pc()
            run.log(d, step)
            durations[n % TIMED_SLOTS] = pc() - t0
            n += 1
        return n

    # 1. log() idle
    n = timed_loop(lambda: False, IDLE_STEPS)
    idle = C.latency_stats(durations[:n])
    run.flush(60)
    time.sleep(0.5)  # the shipper settles; the parent reads the RSS before the upload

    def uploaded(count: int) -> Any:
        return lambda: run.stats.artifacts_uploaded + run.stats.artifacts_failed >= count

    # 2. an upload while the training thread sleeps
    marks = {"idle_call": time.time()}
    t0 = time.perf_counter()
    run.log_artifact(spec["file_a"], name="a.bin")
    call_s = time.perf_counter() - t0
    while not uploaded(1)():
        time.sleep(0.002)
    idle_upload_s = time.perf_counter() - t0
    marks["idle_done"] = time.time()
    time.sleep(0.3)

    # 3. log() in a tight loop while another upload runs
    marks["busy_call"] = time.time()
    t0 = time.perf_counter()
    run.log_artifact(spec["file_b"], name="b.bin")
    n = timed_loop(uploaded(2), 1 << 62)
    busy_upload_s = time.perf_counter() - t0
    marks["busy_done"] = time.time()
    kept = min(n, TIMED_SLOTS)
    busy = C.latency_stats(durations[:kept])
    report = run.finish()
    import resource

    C.write_result(
        spec,
        {
            "idle_log": idle,
            "busy_log": busy,
            "busy_steps": n,
            "call_s": call_s,
            "idle_upload_s": idle_upload_s,
            "busy_upload_s": busy_upload_s,
            "marks": marks,
            "uploaded": report.artifacts_uploaded,
            "failed": report.artifacts_failed,
            "dropped_points": report.dropped_points,
            "ru_maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        },
    )


# ============================================================================================
# the servers
# ============================================================================================
class Collector:
    def __init__(self, redis_url: str, data_dir: Path) -> None:
        self.process = subprocess.Popen(
            [*AQUARIUM, "collector", "--redis-url", redis_url, "--data-dir", str(data_dir), "--http-port", "0"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self.url = self._wait(r"API on (http://\S+)").group(1)
        self._wait("Ctrl-C stops")

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def _wait(self, pattern: str, timeout: float = 60.0) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    break
                continue
            seen.append(line)
            match = re.search(pattern, line)
            if match:
                return match
        raise RuntimeError(f"the collector never printed {pattern!r}: {''.join(seen)[-2000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def make_file(path: Path, size: int) -> None:
    """Random bytes, written in 1 MiB blocks (a fresh random block every 64: cheap, no dedup)."""
    block = bytearray(os.urandom(MB))
    with open(path, "wb") as f:
        left, i = size, 0
        while left:
            if i % 64 == 0:
                block = bytearray(os.urandom(MB))
            block[:8] = i.to_bytes(8, "little")
            n = min(MB, left)
            f.write(block[:n])
            left -= n
            i += 1


def time_cp(path: Path) -> float:
    copy = path.with_suffix(".copy")
    started = time.perf_counter()
    subprocess.run(["cp", str(path), str(copy)], check=True)
    elapsed = time.perf_counter() - started
    copy.unlink()
    return elapsed


def run_size(work: Path, redis_url: str, size: int, index: int) -> dict[str, Any]:
    import psutil

    file_a, file_b = work / f"a-{index}.bin", work / f"b-{index}.bin"
    make_file(file_a, size)
    make_file(file_b, size)
    cp_s = min(time_cp(file_a) for _ in range(2))
    spec = {
        "run": f"bench-artifacts-{index}",
        "redis_url": redis_url,
        "data_dir": str(work / f"agent-{index}"),
        "file_a": str(file_a),
        "file_b": str(file_b),
        "result_path": str(work / f"result-{index}.json"),
    }
    proc = subprocess.Popen(C.worker_argv(SCRIPT, "--worker", spec), stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, int]] = []
    child = psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            samples.append((time.time(), child.memory_info().rss))
        except psutil.Error:
            break
        time.sleep(0.005)
    _, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"worker failed: {err[-2000:]}")
    result: dict[str, Any] = json.loads(Path(spec["result_path"]).read_text())
    marks = result["marks"]
    before = [rss for at, rss in samples if at < marks["idle_call"]]
    during = [rss for at, rss in samples if marks["idle_call"] <= at <= marks["idle_done"]]
    result.update(
        size=size,
        cp_s=cp_s,
        rss_before_mb=(before[-1] if before else float("nan")) / MB,
        rss_peak_idle_upload_mb=max(during, default=0) / MB,
        rss_peak_mb=max((rss for _, rss in samples), default=0) / MB,
        rss_samples=len(samples),
    )
    result["rss_growth_mb"] = result["rss_peak_idle_upload_mb"] - result["rss_before_mb"]
    for path in (file_a, file_b):
        path.unlink()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="100 MB and 25 MB, < 30 s")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    sys.path.insert(0, str(SCRIPT.parent))
    from _processes import redis_server

    mode = "quick" if args.quick else "full"
    started = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="aquarium-bench-artifacts-", dir=os.environ.get("AQUARIUM_BENCH_TMP")))
    server = redis_server(work / "redis")
    server.start()
    collector = None
    results: list[dict[str, Any]] = []
    try:
        collector = Collector(server.url, work / "store")
        for index, size in enumerate(SIZES[mode]):
            C.progress(f"{size // MB} MB: files, cp, the training process")
            results.append(run_size(work, server.url, size, index))
    finally:
        if collector is not None:
            collector.stop()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    report(results, mode, time.perf_counter() - started)


def report(results: list[dict[str, Any]], mode: str, wall_s: float) -> None:
    out = C.console()
    rows = []
    for r in results:
        mb = r["size"] / MB
        rows.append(
            (
                f"{mb:.0f} MB",
                C.fmt(mb / r["cp_s"]),
                C.fmt(mb / r["idle_upload_s"]),
                C.fmt((mb / r["idle_upload_s"]) / (mb / r["cp_s"])),
                C.fmt(mb / r["busy_upload_s"]),
                C.fmt(r["call_s"] * 1e3),
                f"{C.fmt(r['rss_before_mb'])} → {C.fmt(r['rss_peak_idle_upload_mb'])}",
                C.fmt(r["rss_growth_mb"]),
            )
        )
    out.print(
        C.table(
            f"Artifact upload through a real collector ({mode})",
            ["file", "cp MB/s", "upload MB/s", "upload / cp", "upload MB/s, log() busy", "call ms",
             "RSS MB before → peak", "RSS growth MB"],
            rows,
            caption="upload: log_artifact() to uploaded (hash + link + PUT + verify + store), training thread idle",
        )
    )  # fmt: skip
    rows = []
    for r in results:
        idle, busy = r["idle_log"], r["busy_log"]
        rows.append(
            (
                f"{r['size'] / MB:.0f} MB",
                C.fmt(idle["median_us"]),
                C.fmt(busy["median_us"]),
                C.fmt(idle["p99_us"]),
                C.fmt(busy["p99_us"]),
                C.fmt(idle["mean_us"]),
                C.fmt(busy["mean_us"]),
                f"{r['busy_steps']:,}",
            )
        )
    out.print(
        C.table(
            "log() cost of the training thread (µs a call; tight loop, 4 keys a step)",
            ["file", "median idle", "median uploading", "p99 idle", "p99 uploading", "mean idle", "mean uploading",
             "steps while uploading"],
            rows,
        )
    )  # fmt: skip
    big = results[0]
    mb = big["size"] / MB
    C.emit_json(
        C.clean_nan(
            {
                "bench": "artifacts",
                "mode": mode,
                "sizes_mb": [r["size"] / MB for r in results],
                "cp_mb_s": mb / big["cp_s"],
                "upload_mb_s": mb / big["idle_upload_s"],
                "upload_over_cp": big["cp_s"] / big["idle_upload_s"],
                "upload_busy_mb_s": mb / big["busy_upload_s"],
                "call_ms": big["call_s"] * 1e3,
                "rss_growth_mb": [r["rss_growth_mb"] for r in results],
                "rss_peak_mb": [r["rss_peak_mb"] for r in results],
                "log_idle_median_us": big["idle_log"]["median_us"],
                "log_uploading_median_us": big["busy_log"]["median_us"],
                "log_idle_p99_us": big["idle_log"]["p99_us"],
                "log_uploading_p99_us": big["busy_log"]["p99_us"],
                "log_idle_mean_us": big["idle_log"]["mean_us"],
                "log_uploading_mean_us": big["busy_log"]["mean_us"],
                "uploaded": sum(r["uploaded"] for r in results),
                "failed": sum(r["failed"] for r in results),
                "dropped_points": sum(r["dropped_points"] for r in results),
                "wall_s": wall_s,
            }
        )
    )


if __name__ == "__main__":
    main()
