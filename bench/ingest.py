"""Collector throughput: a Redis stream of batches into committed SQLite, and reading it back.

    python bench/ingest.py            # 4M points per shape, 3 interleaved repeats
    python bench/ingest.py --quick    # < 30 s: 400k points per shape, 1 repeat

For three batch shapes (1,000 / 100 / 10 steps × 4 keys) the stream of a private redis-server is
pre-filled with batches in the real wire format (``aquarium.agent.wire``), then drained by

* aquarium: ``Collector(CollectorSettings(...)).run(burst=True)`` — decode, one transaction per
  read with the batch-id ledger and series summaries, XACK, watermarks, and the compaction that
  burst mode runs at the end;
* rows: the row-per-point design MLflow uses — one SQL row ``(run_id, key, step, ts, value)`` per
  point, index ``(run_id, key, step)``, WAL, ``executemany``, one transaction per read, fed from
  the same stream through ``unpack_batch`` + numpy. No ledger and no summaries, so it does less.

Both commit with ``synchronous=FULL`` (the collector acknowledges only durable commits). Then
bytes on disk per point (database + WAL after ``wal_checkpoint(TRUNCATE)``) and the time to
read the longest series back (median of 5 warm reads). Each (design, shape, repeat) runs in a
fresh interpreter; repeats are interleaved.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from itertools import repeat
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C

SCRIPT = Path(__file__).resolve()
KEYS = ("loss", "acc", "val_loss", "lr")
SHAPES = {"large": 1000, "medium": 100, "small": 10}
RUN_ID = "bench-ingest"
INCARNATION = "00000000000000-bench"
READ_REPEATS = 5
TARGETS = {"large_pps": 2e6, "medium_pps": 1e6, "small_bps": 20e3, "bytes": 12.0, "read_ms": 50.0}


# ============================================================================================
# the stream
# ============================================================================================
def packed_batches(steps_per_batch: int, points: int, seed: int) -> Iterator[tuple[bytes, int]]:
    """(packed batch, points) in the real wire format: noisy float64 values, ~1 ms wall-clock
    spacing with jitter, contiguous steps and seqs; the first batch carries run metadata."""
    import numpy as np

    from aquarium.agent.wire import Batch, BatchId, MetricChunk, pack_batch

    n_steps = points // len(KEYS)
    n_batches = max(1, n_steps // steps_per_batch)
    n_steps = n_batches * steps_per_batch
    rng = np.random.default_rng(seed)
    steps = np.arange(n_steps, dtype="<i8")
    gaps = np.clip(0.001 + rng.normal(0.0, 0.0002, n_steps), 0.0001, None)
    times = (time.time() - n_steps * 0.001 + np.cumsum(gaps)).astype("<f8")
    base = 1.0 / np.sqrt(steps + 1.0)
    values = {key: (base * (1.0 + i) + rng.normal(0.0, 0.01, n_steps)).astype("<f8") for i, key in enumerate(KEYS)}
    step_bytes, time_bytes = steps.tobytes(), times.tobytes()
    value_bytes = {key: v.tobytes() for key, v in values.items()}
    width = steps_per_batch * 8
    for seq in range(n_batches):
        a, b = seq * width, (seq + 1) * width
        batch = Batch(
            BatchId(RUN_ID, 0, INCARNATION, seq),
            metrics=[MetricChunk(key, step_bytes[a:b], value_bytes[key][a:b], time_bytes[a:b]) for key in KEYS],
        )
        if seq == 0:
            batch.meta = {
                "name": RUN_ID,
                "experiment": "bench",
                "host": "bench",
                "world_size": 1,
                "started_at": float(times[0]),
            }
            batch.status = [("running", float(times[0]))]
        yield pack_batch(batch), steps_per_batch * len(KEYS)


def fill_stream(url: str, steps_per_batch: int, points: int, seed: int) -> dict[str, Any]:
    import redis

    from aquarium.agent.redis_keys import BATCH_FIELD, RedisKeys

    client = redis.Redis.from_url(url)
    stream = RedisKeys().stream
    started = time.perf_counter()
    pipe = client.pipeline(transaction=False)
    batches = total_points = total_bytes = 0
    for data, n in packed_batches(steps_per_batch, points, seed):
        pipe.xadd(stream, {BATCH_FIELD: data})
        batches += 1
        total_points += n
        total_bytes += len(data)
        if batches % 500 == 0:
            pipe.execute()
    pipe.execute()
    client.close()
    return {
        "batches": batches,
        "points": total_points,
        "wire_bytes": total_bytes,
        "fill_s": time.perf_counter() - started,
    }


# ============================================================================================
# the two designs
# ============================================================================================
def drain_aquarium(url: str, data_dir: Path, read_count: int) -> dict[str, Any]:
    import aquarium.collector.consumer as consumer
    from aquarium.collector import Collector, CollectorSettings

    collector = Collector(
        CollectorSettings(redis_url=url, data_dir=data_dir, read_count=read_count, consumer="bench", ingest_spool=False)
    )
    totals: dict[str, float] = {}
    # bench-only instrumentation of this one live object; the collector's code is unchanged
    collector._read = C.timed(collector._read, totals, "read")  # type: ignore[method-assign]
    collector.handle = C.timed(collector.handle, totals, "handle")  # type: ignore[method-assign]
    collector._claim = C.timed(collector._claim, totals, "upkeep")  # type: ignore[method-assign]
    collector._trim = C.timed(collector._trim, totals, "upkeep")  # type: ignore[method-assign]
    collector.store.ingest = C.timed(collector.store.ingest, totals, "store")  # type: ignore[method-assign]
    collector.store.compact = C.timed(collector.store.compact, totals, "compact")  # type: ignore[method-assign]
    consumer.unpack_batch = C.timed(consumer.unpack_batch, totals, "decode")
    from aquarium.collector.service import tune_gc_for_a_collector_process

    tune_gc_for_a_collector_process()  # what `aquarium collector` and `aquarium up` do in their process
    started = time.perf_counter()
    stats = collector.run(burst=True)
    total = time.perf_counter() - started
    collector.close()
    return {
        "total_s": total,
        "points": stats.points,
        "batches": stats.stored,
        "reads": stats.reads,
        "dead": stats.dead_letters,
        "compacted_chunks": stats.compacted,
        "read_s": totals["read"],
        "decode_s": totals["decode"],
        "store_s": totals["store"],
        "ack_s": totals["handle"] - totals["decode"] - totals["store"],
        "compact_s": totals["compact"],
        "upkeep_s": totals["upkeep"],
    }


ROWS_SCHEMA = """
CREATE TABLE metrics (run_id INTEGER NOT NULL, key TEXT NOT NULL, step INTEGER NOT NULL,
                      ts REAL NOT NULL, value REAL NOT NULL);
CREATE INDEX metrics_series ON metrics (run_id, key, step);
"""


def _rows_connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")  # as durable as the store: acks follow commits
    conn.execute("PRAGMA cache_size=-65536")  # the store's cache size
    return conn


def drain_rows(url: str, db_path: Path, read_count: int) -> dict[str, Any]:
    import numpy as np
    import redis

    from aquarium.agent.redis_keys import BATCH_FIELD, RedisKeys
    from aquarium.agent.wire import unpack_batch

    keys = RedisKeys()
    client = redis.Redis.from_url(url)
    client.xgroup_create(keys.stream, keys.group, id="0", mkstream=True)
    conn = _rows_connect(db_path)
    conn.executescript(ROWS_SCHEMA)
    field = BATCH_FIELD.encode()
    run_ids: dict[str, int] = {}
    totals = dict.fromkeys(("read_s", "decode_s", "store_s", "ack_s"), 0.0)
    points = batches = reads = 0
    clock = time.perf_counter
    started = clock()
    while True:
        t0 = clock()
        reply = client.xreadgroup(keys.group, "rows", {keys.stream: ">"}, count=read_count)
        t1 = clock()
        totals["read_s"] += t1 - t0
        if not reply:
            break
        reads += 1
        entries = reply[0][1]
        columns = []
        for _, fields in entries:
            batch = unpack_batch(fields[field])
            run = run_ids.setdefault(batch.id.run, len(run_ids) + 1)
            for chunk in batch.metrics:
                columns.append(
                    (
                        run,
                        chunk.key,
                        np.frombuffer(chunk.steps, "<i8").tolist(),
                        np.frombuffer(chunk.times, "<f8").tolist(),
                        np.frombuffer(chunk.values, "<f8").tolist(),
                    )
                )
        t2 = clock()
        conn.execute("BEGIN")
        for run, key, steps, times, values in columns:
            conn.executemany(
                "INSERT INTO metrics (run_id, key, step, ts, value) VALUES (?, ?, ?, ?, ?)",
                zip(repeat(run), repeat(key), steps, times, values),
            )
            points += len(steps)
        conn.execute("COMMIT")
        t3 = clock()
        client.xack(keys.stream, keys.group, *[eid for eid, _ in entries])
        totals["ack_s"] += clock() - t3
        totals["decode_s"] += t2 - t1
        totals["store_s"] += t3 - t2
        batches += len(entries)
    total = clock() - started
    conn.close()
    client.close()
    return {
        "total_s": total,
        "points": points,
        "batches": batches,
        "reads": reads,
        "compact_s": 0.0,
        "upkeep_s": 0.0,
        **totals,
    }


# ============================================================================================
# after the drain: bytes on disk, reading back
# ============================================================================================
def disk_usage(db_path: Path) -> dict[str, Any]:
    wal = Path(str(db_path) + "-wal")
    before = db_path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    conn = sqlite3.connect(db_path, isolation_level=None)
    busy, log_frames, done = conn.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    page_size = conn.execute("PRAGMA page_size").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    conn.close()
    after = db_path.stat().st_size + (wal.stat().st_size if wal.exists() else 0)
    return {
        "bytes_before_checkpoint": before,
        "bytes": after,
        "live_bytes": (pages - free) * page_size,
        "free_pages": free,
        "checkpoint_busy": busy,
    }


def _timed_reads(fn: Any) -> tuple[list[float], Any]:
    result = fn()  # warm-up: page cache and connection
    times = []
    for _ in range(READ_REPEATS):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return times, result


def read_back_aquarium(data_dir: Path) -> dict[str, Any]:
    from aquarium.collector.store import Store

    store = Store(data_dir)
    try:
        run = store.get_run(RUN_ID)
        persisted = sum(m["count"] for m in run["metrics"].values())
        key = max(run["metrics"], key=lambda k: run["metrics"][k]["count"])
        times, series = _timed_reads(lambda: store.read_series(RUN_ID, key))
        chunks = store.chunk_count(RUN_ID, key)
        ok = bool(len(series) == run["metrics"][key]["count"] and (series.steps[1:] > series.steps[:-1]).all())
    finally:
        store.close()
    return {
        "persisted": persisted,
        "read_ms": statistics.median(times) * 1e3,
        "read_runs_ms": [t * 1e3 for t in times],
        "series_points": len(series),
        "series_chunks": chunks,
        "series_ok": ok,
    }


def read_back_rows(db_path: Path) -> dict[str, Any]:
    conn = _rows_connect(db_path)
    persisted = conn.execute("SELECT count(*) FROM metrics").fetchone()[0]
    key = conn.execute(
        "SELECT key FROM metrics WHERE run_id = 1 GROUP BY key ORDER BY count(*) DESC LIMIT 1"
    ).fetchone()[0]
    sql = "SELECT step, value FROM metrics WHERE run_id = ? AND key = ? ORDER BY step"
    times, rows = _timed_reads(lambda: conn.execute(sql, (1, key)).fetchall())
    plan = " ".join(str(r[-1]) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, (1, key)))
    conn.close()
    return {
        "persisted": persisted,
        "read_ms": statistics.median(times) * 1e3,
        "read_runs_ms": [t * 1e3 for t in times],
        "series_points": len(rows),
        "series_chunks": None,
        "series_ok": len(rows) > 0,
        "plan": plan,
    }


# ============================================================================================
# worker and orchestration
# ============================================================================================
def worker(spec: dict[str, Any]) -> None:
    from aquarium.cli.redis_server import RedisServer

    tmp = Path(spec["tmp"])
    server = RedisServer(binary=C.REDIS_BINARY, data_dir=tmp / "redis").start()
    try:
        fill = fill_stream(server.url, spec["steps_per_batch"], spec["points"], spec["seed"])
        if spec["design"] == "aquarium":
            data_dir = tmp / "store"
            drain = drain_aquarium(server.url, data_dir, spec["read_count"])
            db_path = data_dir / "aquarium.db"
            disk = disk_usage(db_path)
            back = read_back_aquarium(data_dir)
        else:
            db_path = tmp / "rows.db"
            drain = drain_rows(server.url, db_path, spec["read_count"])
            disk = disk_usage(db_path)
            back = read_back_rows(db_path)
    finally:
        server.stop()
    points = drain["points"]
    result = {
        **fill,
        **drain,
        **disk,
        **back,
        "expected": fill["points"],
        "points_per_s": points / drain["total_s"],
        "batches_per_s": drain["batches"] / drain["total_s"],
        "ingest_points_per_s": points / (drain["total_s"] - drain["compact_s"]),
        "bytes_per_point": disk["bytes"] / points if points else None,
        "live_bytes_per_point": disk["live_bytes"] / points if points else None,
    }
    C.write_result(spec, result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under 30 s: 400k points per shape, 1 repeat")
    parser.add_argument("--repeats", type=int, help="interleaved repeats (default 3, quick 1)")
    parser.add_argument("--points", type=int, help="points per shape for large and medium (default 4M, quick 400k)")
    parser.add_argument("--small-points", type=int, help="points for the small shape (default 4M, quick 400k)")
    parser.add_argument("--read-count", type=int, default=1000, help="stream entries per XREADGROUP (both designs)")
    parser.add_argument("--shapes", default=",".join(SHAPES), help="comma-separated subset of large,medium,small")
    parser.add_argument("--designs", default="aquarium,rows", help="comma-separated subset of aquarium,rows")
    parser.add_argument("--timeout", type=float, default=1800.0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        return worker(json.loads(args.worker))
    args.repeats = args.repeats or (1 if args.quick else 3)
    args.points = args.points or (400_000 if args.quick else 4_000_000)
    args.small_points = args.small_points or (400_000 if args.quick else 4_000_000)
    shapes = [s for s in args.shapes.split(",") if s]
    designs = [d for d in args.designs.split(",") if d]
    jobs = [(design, shape) for shape in shapes for design in designs]

    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    started = time.perf_counter()
    for rep, (design, shape) in C.interleave(jobs, args.repeats):
        points = args.small_points if shape == "small" else args.points
        C.progress(
            f"repeat {rep + 1}/{args.repeats}: {design}, {shape} batches "
            f"({SHAPES[shape]} steps × {len(KEYS)} keys), {points:,} points"
        )
        tmp = Path(tempfile.mkdtemp(prefix="aqbench-ingest-"))
        try:
            spec = {
                "design": design,
                "steps_per_batch": SHAPES[shape],
                "points": points,
                "seed": rep,
                "read_count": args.read_count,
                "tmp": str(tmp),
            }
            result = C.run_worker(SCRIPT, spec, tmp / "result.json", timeout=args.timeout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if "error" in result:
            C.progress(f"  failed: {result['error']}")
        results.setdefault((design, shape), []).append(result)
    report(results, shapes, designs, args, time.perf_counter() - started)


# ============================================================================================
# report
# ============================================================================================
def _vals(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> list[float | None]:
    return [None if "error" in r or r.get(key) is None else r[key] * scale for r in runs]


def _med(runs: list[dict[str, Any]], key: str, scale: float = 1.0) -> float:
    return C.median(_vals(runs, key, scale))


def report(
    results: dict[tuple[str, str], list[dict[str, Any]]],
    shapes: list[str],
    designs: list[str],
    args: argparse.Namespace,
    total_s: float,
) -> None:
    con = C.console()
    speed_rows, disk_rows = [], []
    for shape in shapes:
        base = results.get(("rows", shape), [])
        for design in designs:
            runs = results.get((design, shape), [])
            ok = [r for r in runs if "error" not in r]
            label = f"{shape} ({SHAPES[shape]:,} steps × {len(KEYS)} keys)"
            if not ok:
                failed = f"[red]failed: {runs[0]['error'][:100] if runs else 'not run'}[/red]"
                speed_rows.append([label, design, failed] + ["-"] * 10)
                disk_rows.append([label, design, failed] + ["-"] * 6)
                continue
            r0 = ok[0]
            vs_rows = design != "rows" and bool(base)
            speed_rows.append(
                [
                    label,
                    design,
                    f"{r0['batches']:,}",
                    f"{r0['points']:,}",
                    C.with_runs(_vals(runs, "points_per_s", 1e-3)),
                    C.with_runs(_vals(runs, "batches_per_s")),
                    C.fmt(_med(runs, "ingest_points_per_s", 1e-3)),
                    *(C.fmt(_med(runs, k)) for k in ("read_s", "decode_s", "store_s", "ack_s", "compact_s")),
                    C.fmt(C.median(_ratio(runs, base, "points_per_s"))) + "×" if vs_rows else "-",
                ]
            )
            persisted = sorted({(r["persisted"], r["expected"]) for r in ok})
            disk_rows.append(
                [
                    label,
                    design,
                    C.with_runs(_vals(runs, "bytes_per_point")),
                    C.fmt(_med(runs, "live_bytes_per_point")),
                    f"{r0['series_points']:,}" + (f" / {r0['series_chunks']}" if r0.get("series_chunks") else ""),
                    C.with_runs(_vals(runs, "read_ms")),
                    C.fmt(C.median(_ratio(base, runs, "read_ms"))) + "× faster" if vs_rows else "-",
                    C.fmt(C.median(_ratio(base, runs, "bytes_per_point"))) + "× smaller" if vs_rows else "-",
                    " ".join(f"{p:,}/{e:,}" for p, e in persisted)
                    + ("" if all(r["series_ok"] for r in ok) else " [red]series check failed[/red]"),
                ]
            )
    con.print(
        C.table(
            f"Ingest: Redis stream → committed SQLite, one consumer, XREADGROUP count={args.read_count}; "
            f"median of {args.repeats} (each run)",
            [
                "batch shape",
                "design",
                "batches",
                "points",
                "k points/s end to end",
                "batches/s",
                "k points/s w/o compaction",
                "read s",
                "decode s",
                "store s",
                "ack s",
                "compact s",
                "vs rows",
            ],
            speed_rows,
            caption="end to end: first XREADGROUP to run(burst=True) returning (rows: to the empty read). read: "
            "XREADGROUP; decode: unpack_batch (rows: + numpy → lists); store: the SQLite transaction incl. "
            "commit, synchronous=FULL; ack: XACK + watermarks; compact: the collector's chunk merging.",
        )
    )
    con.print()
    con.print(
        C.table(
            "On disk and read back: bytes per point after compaction, longest series read (median of 5 warm reads)",
            [
                "batch shape",
                "design",
                "bytes/point on disk",
                "bytes/point live pages",
                "series points / chunks",
                "read ms",
                "read vs rows",
                "size vs rows",
                "points persisted/expected",
            ],
            disk_rows,
            caption="on disk: database + WAL after wal_checkpoint(TRUNCATE); live pages: without SQLite's free list. "
            "aquarium read: Store.read_series (numpy arrays: steps, values, times); rows read: SELECT step, "
            "value ... ORDER BY step, fetchall().",
        )
    )
    con.print()

    def ours(shape: str, key: str, scale: float = 1.0) -> float:
        return _med(results.get(("aquarium", shape), []), key, scale)

    def rows_(shape: str, key: str, scale: float = 1.0) -> float:
        return _med(results.get(("rows", shape), []), key, scale)

    t = TARGETS
    checks: list[tuple[str, str, str, str, bool | None]] = []  # (id, what, target, measured, met)
    if "large" in shapes:
        v = ours("large", "points_per_s")
        checks.append(
            (
                "large_points_per_s",
                "points/s, large batches (1,000 × 4)",
                f"≥ {t['large_pps'] / 1e6:g} M",
                C.fmt(v / 1e6) + " M",
                _ge(v, t["large_pps"]),
            )
        )
    if "medium" in shapes:
        v = ours("medium", "points_per_s")
        checks.append(
            (
                "medium_points_per_s",
                "points/s, medium batches (100 × 4)",
                f"≥ {t['medium_pps'] / 1e6:g} M",
                C.fmt(v / 1e6) + " M",
                _ge(v, t["medium_pps"]),
            )
        )
    if "small" in shapes:
        v = ours("small", "batches_per_s")
        checks.append(
            (
                "small_batches_per_s",
                "batches/s, small batches (10 × 4)",
                f"≥ {t['small_bps'] / 1e3:g} k",
                C.fmt(v / 1e3) + " k",
                _ge(v, t["small_bps"]),
            )
        )
    for shape in shapes:
        v = ours(shape, "bytes_per_point")
        checks.append(
            (
                f"{shape}_bytes_per_point",
                f"bytes/point on disk, {shape}",
                f"≤ {t['bytes']:g}",
                C.fmt(v),
                _le(v, t["bytes"]),
            )
        )
    for shape in shapes:
        n = results.get(("aquarium", shape), [{}])[0].get("series_points") or 0
        v = ours(shape, "read_ms")
        checks.append(
            (
                f"{shape}_read_ms",
                f"read a {n:,}-point series, {shape}" + ("" if n >= 1_000_000 else " (not 1M: no verdict)"),
                f"≤ {t['read_ms']:g} ms for 1M",
                C.fmt(v),
                _le(v, t["read_ms"]) if n >= 1_000_000 else None,
            )
        )
    persisted_ok = all(
        r.get("persisted") == r.get("expected") and r.get("series_ok")
        for runs in results.values()
        for r in runs
        if "error" not in r
    )
    checks.append(
        (
            "persisted",
            "every point persisted, series in step order",
            "all",
            "yes" if persisted_ok else "no",
            persisted_ok,
        )
    )
    con.print(
        C.targets_table(
            [c[1:] for c in checks],
            title=f"Targets (aquarium; {'quick' if args.quick else 'full'} run, {total_s:.0f} s)",
        )
    )

    head: dict[str, Any] = {
        "bench": "ingest",
        "quick": args.quick,
        "repeats": args.repeats,
        "read_count": args.read_count,
    }
    for shape in shapes:
        head[f"{shape}_points_per_s"] = ours(shape, "points_per_s")
        head[f"{shape}_batches_per_s"] = ours(shape, "batches_per_s")
        head[f"{shape}_ingest_points_per_s"] = ours(shape, "ingest_points_per_s")
        head[f"{shape}_compact_s"] = ours(shape, "compact_s")
        head[f"{shape}_bytes_per_point"] = ours(shape, "bytes_per_point")
        head[f"{shape}_read_ms"] = ours(shape, "read_ms")
        head[f"{shape}_read_points"] = results.get(("aquarium", shape), [{}])[0].get("series_points")
        if "rows" in designs:
            head[f"{shape}_rows_points_per_s"] = rows_(shape, "points_per_s")
            head[f"{shape}_rows_bytes_per_point"] = rows_(shape, "bytes_per_point")
            head[f"{shape}_rows_read_ms"] = rows_(shape, "read_ms")
            head[f"{shape}_speedup_vs_rows"] = C.median(
                _ratio(results.get(("aquarium", shape), []), results.get(("rows", shape), []), "points_per_s")
            )
    head["points_persisted_ok"] = persisted_ok
    head["targets_met"] = {check[0]: check[4] for check in checks}
    head["wall_s"] = round(total_s, 1)
    C.emit_json(C.clean_nan(head))


def _ratio(num: list[dict[str, Any]], den: list[dict[str, Any]], key: str) -> list[float | None]:
    """num / den for each repeat of this invocation."""
    out: list[float | None] = []
    for a, b in zip(num, den):
        ok = "error" not in a and "error" not in b and a.get(key) and b.get(key)
        out.append(a[key] / b[key] if ok else None)
    return out


def _ge(value: float, limit: float) -> bool | None:
    return None if value != value else value >= limit


def _le(value: float, limit: float) -> bool | None:
    return None if value != value else value <= limit


if __name__ == "__main__":
    main()
