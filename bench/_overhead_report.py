"""agent_overhead.py's report: the per-mode tables, the sustained-rate table, the targets and
the headline JSON. Runs in the parent process only (rich is fine here)."""

from __future__ import annotations

import argparse
from typing import Any

import _common as C
import _sustained
from _loggers import KEYS

LABELS = {
    "null": "harness only (no-op call)",
    "aquarium": "aquarium (online, no collector)",
    "aquarium+collector": "aquarium + collector process",
    "tensorboard": "tensorboard summary.Writer ×4",
    "wandb": "wandb offline",
    "mlflow": "mlflow async, sqlite, buffered 1 s",
    "trackio": "trackio local (sqlite)",
}
TARGETS = {
    "median_us": 1.5,
    "ratio": 200.0,
    "p99_us": 10.0,
    "max_ms": 5.0,
    "cpu_us": 25.0,
    "finish_ms": 50.0,
    "sustained_points_per_s": 2e6,
}


def _vals(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float | None]:
    return [None if "error" in r or r.get(key) is None else r[key] * scale for r in runs]


def _persisted(runs: list[dict[str, Any]]) -> str:
    cells = []
    for r in runs:
        if "persisted" not in r:
            return "-"
        cells.append(f"{r['persisted']['points']:,}/{r['expected_points']:,}")
    if len(set(cells)) == 1:
        return cells[0] + (f" ×{len(cells)}" if len(cells) > 1 else "")
    return " ".join(cells)


def _ratios(peer: list[dict[str, Any]], ours: list[dict[str, Any]], key: str = "median_us") -> list[float | None]:
    """peer / ours for each repeat (the same repeat of this invocation)."""
    out: list[float | None] = []
    for p, o in zip(peer, ours):
        ok = "error" not in p and "error" not in o and o.get(key)
        out.append(p[key] / o[key] if ok else None)
    return out


def report(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    sustained: dict[str, Any] | None,
    peers: list[str],
    args: argparse.Namespace,
    total_s: float,
) -> None:
    con = C.console()
    order = ["null", "aquarium", "aquarium+collector", *peers]
    summary: dict[str, Any] = {}
    for mode, n in (("tight", args.n), ("paced", args.n_paced)):
        ours = results.get(("aquarium", mode), [])
        rows = []
        for key in order:
            runs = results.get((key, mode))
            if not runs:
                continue
            errors = [r["error"] for r in runs if "error" in r]
            if len(errors) == len(runs):
                rows.append([LABELS[key], f"[red]failed: {errors[0][:80]}[/red]"] + ["-"] * 10)
                continue
            ratio = _ratios(runs, ours) if key in peers else [None]
            rows.append(
                [
                    LABELS[key],
                    C.with_runs(_vals(runs, "median_us")),
                    C.fmt(C.median(_vals(runs, "mean_us"))),
                    C.with_runs(_vals(runs, "p99_us")),
                    C.with_runs(_vals(runs, "max_us", 1e-3)),
                    C.with_runs(ratio) if key in peers else "-",
                    C.with_runs(_vals(runs, "cpu_us_per_step")),
                    C.with_runs(_vals(runs, "collector_cpu_us_per_step")) if key == "aquarium+collector" else "-",
                    C.with_runs(_vals(runs, "finish_s", 1e3)),
                    C.fmt(C.median(_vals(runs, "setup_s", 1e3))),
                    C.fmt(C.median(_vals(runs, "import_s", 1e3))),
                    _persisted(runs),
                ]
            )
        title = (
            f"Training-thread cost of one log() of 4 scalars — {mode} loop, N={n:,} steps"
            + (f", one step per {args.pace_us:g} µs" if mode == "paced" else ", back to back")
            + f"; median of {args.repeats} (each run)"
        )
        con.print(
            C.table(
                title,
                [
                    "logger",
                    "µs/call median",
                    "µs mean",
                    "p99 µs",
                    "max ms",
                    "peer/ours ×",
                    "CPU µs/step",
                    "collector CPU µs/step",
                    "finish ms",
                    "setup ms",
                    "import ms",
                    "points persisted/expected",
                ],
                rows,
                caption="CPU: training process (all threads) + its redis-server (aquarium) or child "
                "processes (peers), init→finish. finish: right after the last log; aquarium "
                "+ collector waits for the commit watermark. peer/ours: per repeat, vs "
                "aquarium without collector.",
            )
        )
        con.print()
        summary[mode] = {key: runs for (key, m), runs in results.items() if m == mode}

    tight_ours = results.get(("aquarium", "tight"), [])
    paced_ours = results.get(("aquarium", "paced"), [])
    tight_coll = results.get(("aquarium+collector", "tight"), [])
    peer_medians = {p: C.median(_vals(results.get((p, "tight"), []), "median_us")) for p in peers}
    peer_medians_paced = {p: C.median(_vals(results.get((p, "paced"), []), "median_us")) for p in peers}
    ratio_by_peer = {p: C.median(_ratios(results.get((p, "tight"), []), tight_ours)) for p in peers}
    ratio_by_peer_paced = {p: C.median(_ratios(results.get((p, "paced"), []), paced_ours)) for p in peers}
    ratio_by_peer_mean = {p: C.median(_ratios(results.get((p, "tight"), []), tight_ours, "mean_us")) for p in peers}
    harness_paced = C.median(_vals(results.get(("null", "paced"), []), "cpu_us_per_step"))
    finite = {p: r for p, r in ratio_by_peer.items() if r == r}
    best_peer = min(finite, key=finite.get) if finite else None  # type: ignore[arg-type]
    finite_paced = {p: r for p, r in ratio_by_peer_paced.items() if r == r}

    all_ours = [
        r
        for key in ("aquarium", "aquarium+collector")
        for mode in ("tight", "paced")
        for r in results.get((key, mode), [])
        if "error" not in r
    ]
    worst_max_ms = max((r["max_us"] / 1e3 for r in all_ours), default=float("nan"))
    persisted = [(r["persisted"]["points"], r["expected_points"]) for r in all_ours if "persisted" in r]
    all_persisted = bool(persisted) and all(p == e for p, e in persisted)

    head = {
        "agent_median_us": C.median(_vals(tight_ours, "median_us")),
        "agent_mean_us": C.median(_vals(tight_ours, "mean_us")),
        "agent_p99_us": C.median(_vals(tight_ours, "p99_us")),
        "agent_max_ms": C.median(_vals(tight_ours, "max_us", 1e-3)),
        "agent_worst_max_ms": worst_max_ms,
        "paced_median_us": C.median(_vals(paced_ours, "median_us")),
        "paced_p99_us": C.median(_vals(paced_ours, "p99_us")),
        "paced_max_ms": C.median(_vals(paced_ours, "max_us", 1e-3)),
        "cpu_us_per_step": C.median(_vals(paced_ours, "cpu_us_per_step")),
        "cpu_us_per_step_tight": C.median(_vals(tight_ours, "cpu_us_per_step")),
        "harness_cpu_us_per_step": harness_paced,
        "finish_ms": C.median(_vals(tight_ours, "finish_s", 1e3)),
        "finish_ms_with_collector": C.median(_vals(tight_coll, "finish_s", 1e3)),
        "points_persisted_ok": all_persisted,
        "ratio_vs_best_peer": finite.get(best_peer) if best_peer else None,
        "best_peer": best_peer,
        "ratio_vs_best_peer_paced": min(finite_paced.values()) if finite_paced else None,
        "ratio_vs_peers_mean": ratio_by_peer_mean,
        "peer_median_us": peer_medians,
        "peer_median_us_paced": peer_medians_paced,
    }

    t = TARGETS
    pending = (args.n + 1) * len(KEYS)
    rows = [
        (
            "median µs per log(), tight",
            f"≤ {t['median_us']} µs",
            C.fmt(head["agent_median_us"]),
            _le(head["agent_median_us"], t["median_us"]),
        ),
        (
            "below every peer (median, tight)",
            f"≥ {t['ratio']:.0f}×",
            ", ".join(f"{p} {C.fmt(r)}×" for p, r in ratio_by_peer.items()) or "no peer",
            (min(finite.values()) >= t["ratio"]) if finite else None,
        ),
        (
            "below every peer (mean µs/step, tight)",
            f"≥ {t['ratio']:.0f}×",
            ", ".join(f"{p} {C.fmt(r)}×" for p, r in ratio_by_peer_mean.items()) or "no peer",
            (min(ratio_by_peer_mean.values()) >= t["ratio"]) if ratio_by_peer_mean else None,
        ),
        (
            "p99 µs per log(), tight",
            f"≤ {t['p99_us']} µs",
            C.fmt(head["agent_p99_us"]),
            _le(head["agent_p99_us"], t["p99_us"]),
        ),
        (
            "p99 µs per log(), paced",
            f"≤ {t['p99_us']} µs",
            C.fmt(head["paced_p99_us"]),
            _le(head["paced_p99_us"], t["p99_us"]),
        ),
        (
            "longest stall, worst of all aquarium runs",
            f"≤ {t['max_ms']} ms",
            C.fmt(worst_max_ms),
            _le(worst_max_ms, t["max_ms"]),
        ),
        (
            "CPU µs per step, paced (process + redis-server)",
            f"≤ {t['cpu_us']} µs",
            C.fmt(head["cpu_us_per_step"]),
            _le(head["cpu_us_per_step"], t["cpu_us"]),
        ),
        (
            "  same, minus the harness alone (sleep + dict + clock)",
            f"≤ {t['cpu_us']} µs",
            f"{C.fmt(head['cpu_us_per_step'] - harness_paced)} "
            f"({C.fmt(head['cpu_us_per_step'])} − {C.fmt(harness_paced)})",
            _le(head["cpu_us_per_step"] - harness_paced, t["cpu_us"]),
        ),
        (
            f"finish() ms, {pending:,} points pending, no collector",
            f"≤ {t['finish_ms']} ms",
            C.fmt(head["finish_ms"]),
            _le(head["finish_ms"], t["finish_ms"]),
        ),
        (
            f"finish() ms, {pending:,} points pending, collector committing",
            f"≤ {t['finish_ms']} ms",
            C.fmt(head["finish_ms_with_collector"]),
            _le(head["finish_ms_with_collector"], t["finish_ms"]),
        ),
        (
            "every point reached the store",
            "all",
            f"{sum(p for p, _ in persisted):,}/{sum(e for _, e in persisted):,}",
            all_persisted if persisted else None,
        ),
    ]
    if sustained is not None:
        con.print(_sustained.table(sustained))
        con.print()
        head.update(_sustained.headline(sustained))
        rows.extend(_sustained_targets(head, t["sustained_points_per_s"]))
    con.print(
        C.targets_table(rows, title=f"Targets (aquarium; {'quick' if args.quick else 'full'} run, {total_s:.0f} s)")
    )
    head["targets_met"] = {
        name: ok
        for name, ok in zip(
            (
                "median",
                "ratio",
                "ratio_mean",
                "p99_tight",
                "p99_paced",
                "max_stall",
                "cpu",
                "cpu_net_of_harness",
                "finish",
                "finish_with_collector",
                "persisted",
                "sustained_rate",
                "pause_no_loss",
            ),
            (row[3] for row in rows),
        )
    }
    head.update(
        bench="agent_overhead",
        quick=args.quick,
        repeats=args.repeats,
        n_tight=args.n,
        n_paced=args.n_paced,
        peers=peers,
        wall_s=round(total_s, 1),
    )
    C.emit_json(C.clean_nan(head))


def _sustained_targets(head: dict[str, Any], goal: float) -> list[tuple[str, str, str, bool | None]]:
    best, pause_dropped = head["sustained_points_per_s"], head["pause_dropped"]
    lost = head["pause_unaccounted"]
    return [
        (
            "sustained logging rate, 0 dropped (logging-only loop)",
            f"≥ {goal / 1e6:g}M points/s",
            C.fmt(best) if best else "none verified",
            None if best is None and head["unthrottled_points_per_s"] is None else (best or 0.0) >= goal,
        ),
        (
            f"{head['pause_points_per_s'] or 0:,.0f} points/s through a {head['pause_s']:g} s Redis pause",
            "0 dropped, 0 lost",
            "-" if pause_dropped is None else f"{pause_dropped:,} dropped, {lost:,} unaccounted",
            None if pause_dropped is None else pause_dropped == 0 and lost == 0,
        ),
    ]


def _le(value: float | None, limit: float) -> bool | None:
    if value is None or value != value:
        return None
    return value <= limit
