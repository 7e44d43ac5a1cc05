"""The sustained logging rate: how many points per second a loop that only logs can hand to
the agent with none dropped, with a real redis-server and a live `aquarium collector`.

A trial runs ``run.log({4 keys}, step=i)`` for a few seconds, flat out or throttled to a rate
(sleeping between bursts, which releases the GIL as a training step would), then finish() waits
for the collector's commit. A rate is *sustained* when nothing was dropped, every accepted
point reached the store, and the shipper was at most ``KEEP_UP_S`` of logging behind when the
loop ended (a growing backlog would hit the memory bound in a longer run). The pause trial
freezes Redis (SIGSTOP/SIGCONT) in the middle of a fixed-rate loop.

The worker half runs in a fresh interpreter (agent_overhead.py ``--worker``); it imports only
the standard library and the agent.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from pathlib import Path
from typing import Any

import _common as C
import _processes as P
from _loggers import KEYS

KEEP_UP_S = 0.2  # the largest backlog a sustained rate may leave, in seconds of logging: two flush intervals
BURST = 256  # steps between clock reads in a throttled loop
PAUSE_RATE = 300_000  # steps/s of the pause trial (×4 keys = 1.2M points/s)


# -- worker ------------------------------------------------------------------------------------
def rate_worker(spec: dict[str, Any]) -> None:
    import aquarium.agent as aq

    run = aq.init(
        "bench",
        run_id=spec["run_id"],
        redis_url=spec["redis_url"],
        data_dir=spec["data_dir"],
        finish_timeout=120.0,  # measure the shipper, not finish()'s default bound
        commit_wait=60.0,
    )
    stats = run.stats
    run.log(dict.fromkeys(KEYS, 0.0), step=0)
    deadline = time.monotonic() + 15.0
    while stats.committed_seq < 0 and time.monotonic() < deadline:  # the collector is there
        time.sleep(0.01)
    rate = spec["rate"] or 0.0
    pause_at, pause_s = spec.get("pause_at", 0.0), spec.get("pause_s", 0.0)
    redis_pid = spec.get("redis_pid")
    shipped0 = stats.points
    log, clock, sleep = run.log, time.perf_counter, time.sleep
    step, paused, resumed = 1, False, False
    t0 = clock()
    end = t0 + spec["duration"]
    while True:
        now = clock()
        if now >= end:
            break
        if pause_s and not paused and now - t0 >= pause_at:
            os.kill(redis_pid, signal.SIGSTOP)
            paused = True
        if paused and not resumed and now - t0 >= pause_at + pause_s:
            os.kill(redis_pid, signal.SIGCONT)
            resumed = True
        burst = BURST
        if rate:
            due = int((now - t0) * rate) + 1
            burst = min(BURST, due - step + 1)
            if burst <= 0:
                sleep(min(0.001, (step - due) / rate))
                continue
        for i in range(step, step + burst):
            v = float(i)
            log({"loss": v, "acc": v, "val_loss": v, "lr": v}, step=i)
        step += burst
    loop_s = clock() - t0
    if paused and not resumed:
        os.kill(redis_pid, signal.SIGCONT)
    backlog = step * len(KEYS) - stats.points - stats.dropped_points
    shipped = stats.points - shipped0
    t1 = clock()
    report = run.finish()
    C.write_result(
        spec,
        {
            "accepted": step * len(KEYS),
            "loop_s": loop_s,
            "offered_points_per_s": (step - 1) * len(KEYS) / loop_s,
            "shipped_points_per_s": shipped / loop_s,
            "backlog_points": backlog,
            "finish_s": clock() - t1,
            "dropped": report.dropped_points,
            "timed_out": report.timed_out,
            "spooled_files": len(report.spooled_files),
        },
    )


# -- trials ------------------------------------------------------------------------------------
class Trials:
    """Trials one after the other against one redis-server and one live collector, each in a
    fresh worker with its own run id; ``settle()`` drains and counts what each one stored."""

    def __init__(self, script: Path) -> None:
        self.script = script
        self.tmp = Path(tempfile.mkdtemp(prefix="aqbench-rate-"))
        self.store = self.tmp / "store"
        self.server = P.redis_server(self.tmp / "redis").start()
        self.collector = P.start_collector(self.server.url, self.store, log_path=self.tmp / "collector.log")
        self.results: list[dict[str, Any]] = []

    def run(self, rate: float | None, duration: float, *, pause_at: float = 0.0, pause_s: float = 0.0) -> dict:
        run_id = f"rate-{len(self.results)}"
        spec = {
            "logger": "rate",
            "run_id": run_id,
            "redis_url": self.server.url,
            "redis_pid": self.server.process.pid,
            "data_dir": str(self.store),
            "rate": rate,
            "duration": duration,
            "pause_at": pause_at,
            "pause_s": pause_s,
        }
        result = C.run_worker(self.script, spec, self.tmp / f"{run_id}.json", timeout=300 + duration)
        P.resume(self.server.process)  # if the worker died while Redis was paused
        result.update(run_id=run_id, rate=rate, duration=duration, pause_s=pause_s)
        if "error" not in result:  # judged on what the live collector committed by finish()
            result["kept_up"] = self._kept_up(result, P.stored_points(self.store, run_id))
        self.results.append(result)
        return result

    @staticmethod
    def _kept_up(result: dict[str, Any], stored: int) -> bool:
        return (
            result["dropped"] == 0
            and stored == result["accepted"]
            and result["backlog_points"] <= KEEP_UP_S * result["offered_points_per_s"]
        )

    def settle(self) -> None:
        """Stop the collector, drain stream and spools, and count every trial's stored points."""
        try:
            P.stop_collector(self.collector)
            P.drain(self.server.url, self.store)
            for r in self.results:
                if "error" not in r:
                    r["stored"] = P.stored_points(self.store, r["run_id"])
                    r["unaccounted"] = r["accepted"] - r["stored"] - r["dropped"]
        finally:
            self.close()

    def close(self) -> None:
        P.resume(self.server.process)
        P.stop_collector(self.collector)
        self.server.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def measure(script: Path, quick: bool) -> dict[str, Any]:
    """Unthrottled, then a search for the highest sustained rate, then the pause trial."""
    duration = 1.0 if quick else 5.0
    search_trials = 1 if quick else 4
    trials = Trials(script)
    try:
        out = _measure(trials, duration, search_trials, quick)
    except BaseException:
        trials.close()
        raise
    trials.settle()
    out["trials"] = trials.results[:-1]
    return out


def _measure(trials: Trials, duration: float, search_trials: int, quick: bool) -> dict[str, Any]:
    out: dict[str, Any] = {}
    C.progress(f"sustained rate: unthrottled loop, {duration:g} s")
    flat = out["unthrottled"] = trials.run(None, duration)
    best: float | None = None
    if "error" not in flat:
        if flat["kept_up"]:
            best = flat["offered_points_per_s"]  # the loop itself is the limit
        else:
            lo: float | None = None
            hi = flat["offered_points_per_s"] / len(KEYS)
            rate = 0.9 * min(hi, flat["shipped_points_per_s"] / len(KEYS))
            for _ in range(search_trials):
                C.progress(f"sustained rate: {rate * len(KEYS):,.0f} points/s for {duration:g} s")
                r = trials.run(rate, duration)
                if "error" in r:
                    break
                if r["kept_up"]:
                    lo = rate
                    best = max(best or 0.0, r["offered_points_per_s"])
                    rate = (rate + hi) / 2
                else:
                    hi = rate
                    rate = (lo + rate) / 2 if lo else rate / 2
    out["best_points_per_s"] = best
    pause_s = 2.0 if quick else 8.0
    lead, tail = (0.3, 0.7) if quick else (1.0, 3.0)
    C.progress(f"sustained rate: {PAUSE_RATE * len(KEYS):,} points/s through a {pause_s:g} s Redis pause")
    out["pause"] = trials.run(PAUSE_RATE, lead + pause_s + tail, pause_at=lead, pause_s=pause_s)
    return out


# -- report ------------------------------------------------------------------------------------
def table(out: dict[str, Any]) -> Any:
    rows = []
    for r in out["trials"] + [out["pause"]]:
        what = "unthrottled" if r["rate"] is None else f"throttled to {r['rate'] * len(KEYS):,.0f} points/s"
        if r.get("pause_s"):
            what += f", Redis paused {r['pause_s']:g} s"
        if "error" in r:
            rows.append([what, f"[red]failed: {r['error'][:80]}[/red]"] + ["-"] * 7)
            continue
        rows.append(
            [
                what,
                C.fmt(r["offered_points_per_s"]),
                C.fmt(r["shipped_points_per_s"]),
                f"{r['accepted']:,}",
                f"{r['stored']:,}",
                f"{r['dropped']:,}",
                f"{r['unaccounted']:,}",
                f"{r['backlog_points']:,}",
                "-" if r.get("pause_s") else ("yes" if r["kept_up"] else "[red]no[/red]"),
            ]
        )
    return C.table(
        "Sustained logging rate: a loop that only logs, real redis-server + `aquarium collector`",
        [
            "loop",
            "logged points/s",
            "shipped points/s",
            "accepted",
            "stored",
            "dropped",
            "unaccounted",
            "backlog at end",
            "sustained",
        ],
        rows,
        caption=f"sustained: 0 dropped, accepted = stored, backlog ≤ {KEEP_UP_S:g} s of logging when the loop ends. "
        "shipped: points the shipper cut into batches during the loop. unaccounted = accepted − stored − dropped.",
    )


def headline(out: dict[str, Any]) -> dict[str, Any]:
    flat, pause = out["unthrottled"], out["pause"]

    def get(r: dict[str, Any], key: str) -> Any:
        return None if "error" in r else r.get(key)

    return {
        "sustained_points_per_s": out["best_points_per_s"],
        "unthrottled_points_per_s": get(flat, "offered_points_per_s"),
        "unthrottled_shipped_points_per_s": get(flat, "shipped_points_per_s"),
        "unthrottled_dropped": get(flat, "dropped"),
        "unthrottled_stored": get(flat, "stored"),
        "unthrottled_unaccounted": get(flat, "unaccounted"),
        "pause_s": pause["pause_s"],
        "pause_points_per_s": get(pause, "offered_points_per_s"),
        "pause_dropped": get(pause, "dropped"),
        "pause_stored": get(pause, "stored"),
        "pause_unaccounted": get(pause, "unaccounted"),
    }
