"""One soak rank: a subprocess that logs through the real agent at a steady rate and keeps a
ledger of exactly what ``log()`` accepted (bench/_soak_ledger.py), then writes its FinishReport.

Imports only the standard library and the agent, like a training job.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from _soak_ledger import PROBE_EVERY, PROBE_KEY, LedgerWriter, ledger_path, report_path, values_of

BURST_S = 0.01  # log what is due, then sleep: ~100 bursts a second, like short training steps


def run_rank(spec: dict[str, Any]) -> None:
    import aquarium.agent as aq

    rank, directory = spec["rank"], Path(spec["ledger_dir"])
    run = aq.init(
        "soak",
        run_id=spec["run_id"],
        rank=rank,
        world_size=spec["world_size"],
        redis_url=spec["redis_url"],
        data_dir=spec["data_dir"],
        finish_timeout=spec["finish_timeout"],
        commit_wait=spec["commit_wait"],
    )
    ledger = LedgerWriter(ledger_path(directory, rank))
    rate, now, sleep = spec["steps_per_s"], time.time, time.sleep
    started = time.monotonic()
    end = started + spec["seconds"]
    step = 0
    while time.monotonic() < end:
        due = int((time.monotonic() - started) * rate) + 1
        while step < due:
            a, b = values_of(rank, step)
            at = now()
            run.log({"a": a, "b": b, PROBE_KEY: a} if step % PROBE_EVERY == 0 else {"a": a, "b": b}, step=step)
            ledger.record(step, at, a, b)
            step += 1
        ledger.flush()
        sleep(BURST_S)
    ledger.close()
    report = run.finish()
    stats = vars(run.stats)
    report_path(directory, rank).write_text(
        json.dumps(
            {
                "steps": step,
                "points": report.points,
                "dropped_points": report.dropped_points,
                "unconfirmed_points": report.unconfirmed_points,
                "timed_out": report.timed_out,
                "spooled_files": report.spooled_files,
                "committed_seq": report.committed_seq,
                "last_seq": report.last_seq,
                "stats": stats,
            }
        )
    )
