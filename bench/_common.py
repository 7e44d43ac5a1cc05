"""What both benchmarks share: fresh worker subprocesses, interleaved repeats, statistics,
rich tables and the JSON line that ends their output.

Workers import this module too, so it imports only the standard library at the top: a worker
that measures the agent must not have numpy or rich loaded behind the agent's back.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

REDIS_BINARY = os.environ.get("AQUARIUM_BENCH_REDIS_SERVER", "/usr/bin/redis-server")


# -- subprocesses ------------------------------------------------------------------------------
def worker_argv(script: str | Path, flag: str, spec: dict[str, Any]) -> list[str]:
    return [sys.executable, str(script), flag, json.dumps(spec)]


def run_worker(
    script: str | Path, spec: dict[str, Any], result_path: Path, *, timeout: float, env: dict[str, str] | None = None
) -> dict[str, Any]:
    """Run ``script --worker SPEC`` in a fresh interpreter; the worker writes its result as JSON
    to ``result_path`` (not stdout: some loggers wrap the console). Never raises for a failed
    worker: the result then has an "error" entry and the table shows it."""
    spec = {**spec, "result_path": str(result_path)}
    started = time.perf_counter()
    try:
        proc = subprocess.run(
            worker_argv(script, "--worker", spec),
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f}s"}
    wall = time.perf_counter() - started
    if proc.returncode != 0 or not result_path.exists():
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-6:]
        return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[-600:]}
    result: dict[str, Any] = json.loads(result_path.read_text())
    result["worker_wall_s"] = wall
    return result


def write_result(spec: dict[str, Any], result: dict[str, Any]) -> None:
    Path(spec["result_path"]).write_text(json.dumps(result))


def interleave(jobs: Sequence[Any], repeats: int) -> list[tuple[int, Any]]:
    """(repeat, job) pairs: every job once per repeat, the order rotated and reversed between
    repeats so no job always runs first (cold caches) or right after the same neighbour."""
    order: list[tuple[int, Any]] = []
    for r in range(repeats):
        shift = r % len(jobs) if jobs else 0
        rotated = list(jobs[shift:]) + list(jobs[:shift])
        if r % 2:
            rotated.reverse()
        order.extend((r, job) for job in rotated)
    return order


# -- statistics --------------------------------------------------------------------------------
def latency_stats(ns: Sequence[int]) -> dict[str, float]:
    """median / p99 / max / mean of per-call latencies given in ns, as µs."""
    s = sorted(ns)
    n = len(s)
    if not n:
        return {"median_us": float("nan"), "p99_us": float("nan"), "max_us": float("nan"), "mean_us": float("nan")}
    return {
        "median_us": s[n // 2] / 1e3 if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2e3,
        "p99_us": s[min(n - 1, int(n * 0.99))] / 1e3,
        "max_us": s[-1] / 1e3,
        "mean_us": sum(s) / n / 1e3,
    }


def median(values: Iterable[float | None]) -> float:
    clean = [v for v in values if v is not None]
    return statistics.median(clean) if clean else float("nan")


def fmt(value: float | None, digits: int = 3) -> str:
    """A number with about ``digits`` significant figures, thousands separated when large."""
    if value is None or value != value:
        return "-"
    if abs(value) >= 10**digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def with_runs(values: Sequence[float | None], digits: int = 3, scale: float = 1.0) -> str:
    """'median (v1/v2/v3)' — the median first, then every repeat in run order."""
    vals = [None if v is None else v * scale for v in values]
    if len(vals) <= 1:
        return fmt(vals[0] if vals else None, digits)
    return f"{fmt(median(vals), digits)} ({'/'.join(fmt(v, digits) for v in vals)})"


# -- output ------------------------------------------------------------------------------------
def console() -> Any:
    from rich.console import Console

    return Console(width=None if sys.stdout.isatty() else 250, highlight=False)


def table(title: str, columns: Sequence[str], rows: Iterable[Sequence[str]], caption: str | None = None) -> Any:
    from rich.table import Table

    t = Table(title=title, caption=caption, title_justify="left", caption_justify="left")
    for i, name in enumerate(columns):
        t.add_column(name, justify="left" if i == 0 else "right", overflow="fold")
    for row in rows:
        t.add_row(*row)
    return t


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("[green]met[/green]" if ok else "[red]not met[/red]")


def targets_table(rows: Sequence[tuple[str, str, str, bool | None]], title: str = "Targets") -> Any:
    """rows: (what, target, measured, met?)."""
    return table(
        title,
        ["what", "target", "measured", "verdict"],
        [(what, target, measured, verdict(ok)) for what, target, measured, ok in rows],
    )


def emit_json(payload: dict[str, Any]) -> None:
    """The headline figures as one JSON object: always the last line on stdout."""
    sys.stderr.flush()
    sys.stdout.flush()
    print(json.dumps(payload, sort_keys=False, default=_json_default), flush=True)


def _json_default(value: Any) -> Any:
    if isinstance(value, float) and value != value:
        return None
    if hasattr(value, "item"):
        return value.item()
    return str(value)


def clean_nan(obj: Any) -> Any:
    """NaN is not JSON: replace it by null, recursively."""
    if isinstance(obj, float) and obj != obj:
        return None
    if isinstance(obj, dict):
        return {k: clean_nan(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [clean_nan(v) for v in obj]
    return obj


def progress(message: str) -> None:
    """One terse line on stderr while the benchmark runs (stdout stays tables + JSON)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def timed(fn: Callable[..., Any], totals: dict[str, float], name: str) -> Callable[..., Any]:
    """Wrap ``fn`` so the seconds spent in it accumulate in ``totals[name]`` (bench-only
    instrumentation of a live object: the wrapped code is not changed)."""
    clock = time.perf_counter
    totals.setdefault(name, 0.0)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        started = clock()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[name] += clock() - started

    return wrapper
