"""Soak: several ranks log through the real agent for N minutes under a random schedule of
faults, then every point each rank's ledger says was accepted is looked up in the store.

    python bench/soak.py --minutes 10      # the soak the issue asks for
    python bench/soak.py --quick           # ~25 s, shorter outages
    python bench/soak.py --faults redis_pause,proxy_stall --seed 3

Not part of pytest's run (tests/bench/test_soak_checker.py tests the checker itself). Faults,
one after the other with a random gap (bench/_soak_faults.py): Redis kill -9 restarted from
its AOF or empty, Redis SIGSTOP/SIGCONT, SIGKILL of one of two `aquarium collector`
processes sharing the group, TCP proxy drop / reset / stall between agents and Redis, and a
full spool filesystem (tmpfs) while the agents are cut off. Afterwards everything is healed,
the ranks finish, a burst collector drains stream and spool, and the ledgers are checked
(bench/_soak_ledger.py). log→stored latency: a poller reads each rank's sparse ``probe``
series every 0.25 s; a point's latency is when it was first seen minus its logged wall time.

Prints tables and, last, the headline JSON. Exit code 1 if the ledger check fails.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
import _soak_ledger as L

SCRIPT = Path(__file__).resolve()
RUN_ID = "soak"
POLL_S = 0.25
ATTRIBUTION_S = 30.0  # else a lost point is put down to the first fault that began this soon after its log()


# -- latency -----------------------------------------------------------------------------------
class LatencyPoller(threading.Thread):
    """Reads each rank's probe series every POLL_S; the first sighting of a step stamps it."""

    def __init__(self, data_dir: Path, ranks: int) -> None:
        super().__init__(name="soak-latency", daemon=True)
        self.data_dir, self.ranks = data_dir, ranks
        self.seen: list[dict[int, float]] = [{} for _ in range(ranks)]
        self.latencies: list[float] = []
        self._done = threading.Event()

    def run(self) -> None:
        from aquarium.agent import AquariumError
        from aquarium.collector import Store

        store = None
        while store is None and not self._done.wait(POLL_S):
            try:
                store = Store(self.data_dir)
            except sqlite3.OperationalError:  # the collectors are creating it: database is locked
                pass
        if store is None:
            return
        with store:
            while not self._done.wait(POLL_S):
                for rank in range(self.ranks):
                    try:
                        series = store.read_series(RUN_ID, L.PROBE_KEY, rank)
                    except (AquariumError, OSError, ValueError):  # not there yet; a store busy
                        continue
                    now, seen = time.time(), self.seen[rank]
                    for step, logged in zip(series.steps.tolist(), series.times.tolist()):
                        if step not in seen:
                            seen[step] = now
                            self.latencies.append(now - logged)

    def stop(self) -> None:
        self._done.set()
        self.join(10)


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))]


# -- the soak ------------------------------------------------------------------------------------
def start_ranks(args: argparse.Namespace, cluster: Any, ledgers: Path, seconds: float) -> list[subprocess.Popen]:
    procs = []
    for rank in range(args.ranks):
        spec = {
            "rank": rank,
            "world_size": args.ranks,
            "run_id": RUN_ID,
            "ledger_dir": str(ledgers),
            "redis_url": cluster.agent_url,
            "data_dir": str(cluster.store),
            "steps_per_s": args.rate,
            "seconds": seconds,
            "finish_timeout": 60.0,
            "commit_wait": 5.0 if args.quick else 15.0,
        }
        log = open(cluster.logs / f"rank-{rank}.log", "wb")
        procs.append(subprocess.Popen(C.worker_argv(SCRIPT, "--rank", spec), stdout=log, stderr=subprocess.STDOUT))
        log.close()
    return procs


def soak(args: argparse.Namespace) -> dict[str, Any]:
    import _processes as P
    from _soak_faults import FAULTS, Cluster

    rng = random.Random(args.seed)
    root = Path(tempfile.mkdtemp(prefix="aqsoak-"))
    ledgers = root / "ledgers"
    ledgers.mkdir()
    cluster = Cluster(root, rng, max_outage=2.5 if args.quick else 8.0)
    out: dict[str, Any] = {"root": str(root)}
    try:
        cluster.start()
        kinds = [k for k in (args.faults.split(",") if args.faults else FAULTS) if k]
        if cluster.disk_note and "disk_full" in kinds:
            kinds.remove("disk_full")
            C.progress(cluster.disk_note)
        seconds = args.minutes * 60
        started = time.monotonic()
        ranks = start_ranks(args, cluster, ledgers, seconds)
        poller = LatencyPoller(cluster.store, args.ranks)
        poller.start()
        C.progress(f"{args.ranks} ranks × {args.rate} steps/s for {seconds:.0f} s; faults: {', '.join(kinds)}")
        gap = (0.5, 2.0) if args.quick else (2.0, 8.0)
        while kinds and time.monotonic() - started < seconds - 1.0:
            time.sleep(min(rng.uniform(*gap), max(0.0, seconds - 1.0 - (time.monotonic() - started))))
            if time.monotonic() - started >= seconds - 1.0:
                break
            fault = cluster.inject(rng.choice(kinds))
            C.progress(f"  {fault.kind}: {fault.detail}")
        cluster.heal()
        C.progress("faults over; waiting for the ranks to finish")
        rank_exit = []
        for proc in ranks:
            try:
                rank_exit.append(proc.wait(120))
            except subprocess.TimeoutExpired:
                P.kill(proc)
                rank_exit.append("killed: did not finish in 120 s")
        time.sleep(2 * POLL_S)
        poller.stop()
        cluster.supervise()
        cluster.stop_collectors()
        C.progress("final drain")
        drained = P.drain(cluster.redis_url, cluster.store)
        from aquarium.collector import Store

        with Store(cluster.store) as store:
            result = L.check(store, RUN_ID, ledgers, args.ranks)
        out.update(
            check=result,
            faults=cluster.faults,
            disk_note=cluster.disk_note,
            crashes=cluster.crashes,
            latencies=poller.latencies,
            probes_seen_live=sum(len(s) for s in poller.seen),
            rank_exit=rank_exit,
            reports=[_report(ledgers, r) for r in range(args.ranks)],
            final_drain={"stored": drained.stored, "claimed": drained.claimed, "spool": drained.spool_batches},
            dead_letters=drained.dead_letters,
            wall_s=time.monotonic() - started,
        )
        return out
    finally:
        cluster.close(keep=args.keep)
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def _report(ledgers: Path, rank: int) -> dict[str, Any]:
    path = L.report_path(ledgers, rank)
    return json.loads(path.read_text()) if path.exists() else {"error": "no report: the rank died"}


# -- output --------------------------------------------------------------------------------------
def lost_by_fault(lost_at: list[float], faults: list[Any]) -> Counter[str]:
    """Each lost point put down to the fault going on when it was logged (±1 s), else to the
    first fault that began up to ATTRIBUTION_S after its log()."""
    by_kind: Counter[str] = Counter()
    for t in lost_at:
        during = [f for f in faults if f.at - 1.0 <= t <= f.at + f.seconds + 1.0]
        after = [f for f in faults if t <= f.at <= t + ATTRIBUTION_S]
        culprit = during[0].kind if during else (after[0].kind + " (after)" if after else "no fault nearby")
        by_kind[culprit] += 1
    return by_kind


def report(out: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    con = C.console()
    check: L.LedgerCheck = out["check"]
    faults = out["faults"]
    counts = Counter(f.kind for f in faults)
    seconds = Counter()
    for f in faults:
        seconds[f.kind] += f.seconds
    con.print(
        C.table(
            f"Faults injected ({len(faults)} in {out['wall_s']:.0f} s, seed {args.seed})",
            ["fault", "times", "seconds broken"],
            [[k, str(n), f"{seconds[k]:.1f}"] for k, n in sorted(counts.items())],
            caption=out["disk_note"] or None,
        )
    )
    lat = out["latencies"]
    p50, p99 = percentile(lat, 0.5), percentile(lat, 0.99)
    verdict = "[green]ok[/green]" if check.ok else "[red]FAILED[/red]"
    rows = [
        ["points checked (accepted by log())", f"{check.points_checked:,}"],
        ["stored (distinct)", f"{check.stored:,}"],
        ["lost", f"{check.lost:,}"],
        ["  reported dropped by the agents", f"{check.reported_dropped:,}"],
        ["  reported unconfirmed (sent, unsaved at finish)", f"{check.reported_unconfirmed:,}"],
        ["    of which Redis lost", f"{check.unconfirmed_lost:,}"],
        ["  lost and not reported", f"{check.unreported_lost:,}"],
        ["  reported dropped but stored", f"{check.overcounted:,}"],
        ["duplicated", f"{check.duplicated:,}"],
        ["wrong value", f"{check.wrong:,}"],
        ["unexpected (never logged)", f"{check.unexpected:,}"],
        ["seq gaps in the store", f"{check.seq_gaps:,}"],
        ["dead letters (final drain)", f"{out['dead_letters']:,}"],
        ["collectors that exited on their own (restarted)", str(len(out["crashes"]))],
        [f"log→stored latency p50 / p99 / max (poll {POLL_S:g} s)", _latency_cell(lat)],
        ["ledger check", verdict],
    ]
    con.print(C.table(f"Ledger check: {args.ranks} ranks, {args.minutes:g} min", ["what", "value"], rows))
    blame = lost_by_fault(check.lost_at, faults)
    if blame:
        rows = [[kind, f"{n:,}"] for kind, n in blame.most_common()]
        con.print(C.table("Lost points by the fault during (or else after) their log()", ["fault", "points"], rows))
    for crash in out["crashes"]:
        con.print(f"[red]{crash}[/red]")
    if check.problems:
        con.print(
            C.table(
                "Problems (first 12)",
                ["rank", "key", "kind", "points", "e.g. steps"],
                [[str(p.rank), p.key, p.kind, f"{p.count:,}", str(p.example_steps)] for p in check.problems[:12]],
            )
        )
    con.print(
        C.table(
            "Agents (FinishReport and run.stats per rank)",
            ["rank", "steps", "dropped", "timed out", "spooled files", "redis errors", "resent", "replayed", "exit"],
            [_rank_row(r, rep, out["rank_exit"][r]) for r, rep in enumerate(out["reports"])],
        )
    )
    return {
        "bench": "soak",
        "ok": check.ok,
        "minutes": args.minutes,
        "ranks": args.ranks,
        "seed": args.seed,
        "faults": dict(sorted(counts.items())),
        "faults_total": len(faults),
        "points_checked": check.points_checked,
        "lost": check.lost,
        "duplicated": check.duplicated,
        "wrong": check.wrong,
        "unexpected": check.unexpected,
        "reported_dropped": check.reported_dropped,
        "reported_unconfirmed": check.reported_unconfirmed,
        "unconfirmed_lost": check.unconfirmed_lost,
        "unreported_lost": check.unreported_lost,
        "overcounted": check.overcounted,
        "lost_by_fault": dict(blame),
        "latency_p50_s": p50,
        "latency_p99_s": p99,
        "latency_max_s": max(lat) if lat else None,
        "latency_samples": len(lat),
        "disk_full_note": out["disk_note"],
        "collector_crashes": len(out["crashes"]),
        "wall_s": round(out["wall_s"], 1),
    }


def _latency_cell(lat: list[float]) -> str:
    if not lat:
        return "-"
    return f"{percentile(lat, 0.5):.3f} / {percentile(lat, 0.99):.3f} / {max(lat):.3f} s ({len(lat):,} samples)"


def _rank_row(rank: int, rep: dict[str, Any], exit_code: Any) -> list[str]:
    if "error" in rep:
        return [str(rank), f"[red]{rep['error']}[/red]", "-", "-", "-", "-", "-", "-", str(exit_code)]
    stats = rep["stats"]
    return [
        str(rank),
        f"{rep['steps']:,}",
        f"{rep['dropped_points']:,}",
        str(rep["timed_out"]),
        str(len(rep["spooled_files"])),
        str(stats.get("redis_errors", "-")),
        str(stats.get("batches_resent", "-")),
        str(stats.get("batches_replayed", "-")),
        str(exit_code),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=10.0, help="how long the ranks log (default 10)")
    parser.add_argument("--quick", action="store_true", help="about 25 s: 12 s of logging, outages ≤ 2.5 s")
    parser.add_argument("--ranks", type=int, default=4, help="rank processes (default 4)")
    parser.add_argument("--rate", type=int, default=500, help="steps per second per rank, 2 keys + a probe (500)")
    parser.add_argument("--faults", default="", help="comma-separated subset of the fault kinds (default all)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the fault schedule (default random)")
    parser.add_argument("--keep", action="store_true", help="keep the soak's directory (logs, store, ledgers)")
    parser.add_argument("--rank", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rank:
        from _soak_rank import run_rank

        return run_rank(json.loads(args.rank))
    if args.quick:
        args.minutes = 0.2
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    head = report(soak(args), args)
    C.emit_json(C.clean_nan(head))
    if not head["ok"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
