"""The dashboard in Chromium: how long a logged point takes to reach the browser, and how long
the runs list takes to show its first page over many runs.

    python bench/dashboard.py            # 10,000 runs, 200 live points; about a minute
    python bench/dashboard.py --quick    # 2,000 runs, 40 live points; < 30 s

Everything is real: a private redis-server, a collector thread storing into a fresh data dir, the
dashboard served by ``UiServer`` (the ``aquarium ui`` server) and Debian's Chromium driven by
Playwright (``/usr/bin/chromium``, never ``playwright install``).

1. Live latency: a run logs one point at a time (``run.log(..., step=s)``, default agent
   settings, so the agent's flush interval is included); the clock starts when ``log()``
   returns and stops when the browser's ``ColumnDataSource`` of that chart holds step ``s``
   (polled in the page every 5 ms). Points are paced 50 ms apart.
2. First page: the runs are ingested into the store beforehand (one batch each: params, three
   metrics, a status); the clock runs from ``page.goto(/)`` to the table showing its first row
   and the pager counting every run. Each load is a new browser context (cold: no cache, the
   headline), then a reload in that context (the browser's cache holds Panel's JS and CSS).
3. Compare: 10 runs x 10 metrics x 1M steps (``--quick``: 20,000 steps) in a store of their own;
   the clock runs from ``page.goto(/?compare=...)`` in a new browser context to every overlaid
   run's line holding its points and the page painted twice after that. A ``longtask``
   observer records the longest main-thread task meanwhile (the page's responsiveness).

Targets (issue 10): live p50 <= 300 ms, p99 <= 1 s; first page of 10,000 runs <= 1.5 s; compare
<= 3 s. The last stdout line is the JSON headline.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import REDIS_BINARY, emit_json, progress

CHROMIUM = "/usr/bin/chromium"
SIZES = {
    "full": {"runs": 10_000, "points": 200, "loads": 5, "compare": (10, 10, 1_000_000), "compare_loads": 3},
    "quick": {"runs": 2_000, "points": 30, "loads": 2, "compare": (10, 10, 20_000), "compare_loads": 1},
}
LIVE_RUN = "bench-live"
SOURCE = f"curve|{LIVE_RUN}|loss|mean"
FIRST_ROW = '.tabulator-row .tabulator-cell[tabulator-field="name"]'
LONG_TASKS = """
window.__aqLongest = 0;
new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.__aqLongest = Math.max(window.__aqLongest, e.duration);
}).observe({type: "longtask", buffered: true});
"""
CURVES_FILLED = """() => {
    let n = 0;  // the compared runs' lines holding points: a row of each overlay's MultiLine ("curves")
    for (const doc of (window.Bokeh?.documents || [])) {
        for (const m of (doc.all_models ?? doc._all_models.values())) {
            if (m.name === "curves" && m.data_source) n += m.data_source.data.ys.filter(y => y.length > 0).length;
        }
    }
    return n;
}"""
PAINTED = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r(true))))"
"""Resolves once the browser has painted twice: the canvases hold what the data sources hold."""
HAS_STEP = """([name, step]) => {
    for (const doc of (window.Bokeh?.documents || [])) {
        const m = doc.get_model_by_name(name);
        if (m) { const s = m.data.step; return s.length > 0 && s[s.length - 1] >= step; }
    }
    return false;
}"""


def fill(data_dir: Path, runs: int) -> float:
    """``runs`` runs straight into the store (one batch each), as a long-used store holds them."""
    import numpy as np

    from aquarium.agent.wire import Batch, BatchId, MetricChunk
    from aquarium.collector import Store

    started = time.perf_counter()
    t0 = time.time() - runs - 3600
    steps = np.arange(10, dtype="<i8").tobytes()
    times = (t0 + np.arange(10, dtype="<f8")).tobytes()
    rng = np.random.default_rng(0)
    with Store(data_dir) as store:
        for lo in range(0, runs, 500):
            batches = []
            for i in range(lo, min(runs, lo + 500)):
                chunks = [
                    MetricChunk(key, steps, rng.uniform(0, 2, 10).astype("<f8").tobytes(), times)
                    for key in ("loss", "val_loss", "accuracy")
                ]
                batches.append(
                    Batch(
                        BatchId(f"bench-ui-{i:05d}", 0, "inc", 0),
                        metrics=chunks,
                        params={"lr": float(rng.choice([1e-4, 3e-4, 1e-3])), "batch_size": 64},
                        meta={"experiment": "bench-ui", "name": f"run-{i:05d}", "started_at": t0 + i},
                        status=[("running", t0 + i), ("completed", t0 + i + 60)],
                    )
                )
            store.ingest(batches)
    return time.perf_counter() - started


def fill_compare(data_dir: Path, runs: int, metrics: int, steps: int) -> tuple[list[str], float]:
    """``runs`` runs of ``metrics`` metrics of ``steps`` points each, ingested as wire batches of
    10,000 steps (as an agent ships them, only faster): the compare benchmark's store."""
    import numpy as np

    from aquarium.agent.wire import Batch, BatchId, MetricChunk
    from aquarium.collector import Store

    started = time.perf_counter()
    per_batch = 10_000
    step = np.arange(steps, dtype="<i8")
    step_b, time_b = step.tobytes(), (time.time() - 86_400 + step * 0.01).astype("<f8").tobytes()
    rng = np.random.default_rng(1)
    ids = [f"bench-compare-{r:02d}" for r in range(runs)]
    with Store(data_dir) as store:
        for r, run_id in enumerate(ids):
            values = {
                f"metric_{k:02d}": (np.exp(-step / (steps / 5 * (1 + k + r / runs))) + rng.normal(0, 0.02, steps))
                .astype("<f8")
                .tobytes()
                for k in range(metrics)
            }
            pending = []
            for seq in range(-(-steps // per_batch)):
                a, b = seq * per_batch * 8, min(steps, (seq + 1) * per_batch) * 8
                batch = Batch(
                    BatchId(run_id, 0, "inc", seq),
                    metrics=[MetricChunk(k, step_b[a:b], v[a:b], time_b[a:b]) for k, v in values.items()],
                )
                if seq == 0:
                    batch.meta = {"experiment": "bench-compare", "name": run_id, "started_at": time.time() - 86_400}
                    batch.params = {"lr": 1e-4 * (r + 1), "batch_size": 32 * (1 + r % 3)}
                pending.append(batch)
                if len(pending) == 20:
                    store.ingest(pending)
                    pending = []
            if pending:
                store.ingest(pending)
    return ids, time.perf_counter() - started


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes: under 30 s")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]

    from playwright.sync_api import sync_playwright

    import aquarium.agent as aq
    from aquarium.cli.redis_server import RedisServer, free_port
    from aquarium.collector import Collector, CollectorSettings
    from aquarium.ui import UiServer, UiSettings, dashboard_for

    work = Path(tempfile.mkdtemp(prefix="bench-dashboard-"))
    data_dir = work / "data"
    progress(f"ingesting {size['runs']:,} runs")
    fill_s = fill(data_dir, size["runs"])
    compare_runs, compare_metrics, compare_steps = size["compare"]
    progress(f"ingesting {compare_runs} runs x {compare_metrics} metrics x {compare_steps:,} steps to compare")
    compare_ids, compare_fill_s = fill_compare(work / "compare", compare_runs, compare_metrics, compare_steps)
    from aquarium.ui.views.compare import DEFAULT_OVERLAID

    overlaid = compare_runs * min(DEFAULT_OVERLAID, compare_metrics)
    redis_server = RedisServer(free_port(), data_dir=work / "redis", binary=REDIS_BINARY)
    redis_server.start()
    collector = Collector(CollectorSettings.from_env(redis_url=redis_server.url, data_dir=data_dir))
    collecting = threading.Thread(target=collector.run, name="bench-collector", daemon=True)
    collecting.start()
    server = UiServer(dashboard_for(str(data_dir), redis_server.url), UiSettings(port=0)).start()
    first_page: list[float] = []
    warm_page: list[float] = []
    latencies: list[float] = []
    busy: list[float] = []  # the page's main thread busy (Chromium's TaskDuration), cold loads
    page_bytes: list[int] = []
    compare_s: list[float] = []
    compare_longest: list[float] = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=CHROMIUM,
                headless=True,
                args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
            )
            expected = f"of {size['runs']:,}"
            for _ in range(size["loads"]):
                context = browser.new_context(viewport={"width": 1400, "height": 900})
                page = context.new_page()
                cdp = context.new_cdp_session(page)
                cdp.send("Performance.enable")
                finished: list[Any] = []
                page.on("requestfinished", lambda request, into=finished: into.append(request))
                for times in (first_page, warm_page):  # a new browser profile, then a reload with its cache
                    started = time.perf_counter()
                    page.goto(server.url)
                    page.locator("#aq-pager", has_text=expected).wait_for(timeout=60_000)
                    page.locator(FIRST_ROW).first.wait_for(timeout=60_000)
                    times.append(time.perf_counter() - started)
                    if times is first_page:
                        metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                        busy.append(float(metrics["TaskDuration"]))
                        page_bytes.append(sum(max(0, r.sizes()["responseBodySize"]) for r in finished))
                context.close()
            progress(f"first page: {statistics.median(first_page) * 1000:.0f} ms median over {len(first_page)} loads")

            compare_server = UiServer(dashboard_for(str(work / "compare"), None), UiSettings(port=0)).start()
            try:
                for _ in range(size["compare_loads"]):
                    context = browser.new_context(viewport={"width": 1400, "height": 900})
                    page = context.new_page()
                    page.add_init_script(LONG_TASKS)
                    started = time.perf_counter()
                    page.goto(compare_server.url + "?compare=" + ",".join(compare_ids))
                    page.wait_for_function(f"() => ({CURVES_FILLED})() >= {overlaid}", polling=20, timeout=180_000)
                    page.evaluate(PAINTED)
                    compare_s.append(time.perf_counter() - started)
                    compare_longest.append(float(page.evaluate("() => window.__aqLongest")))
                    context.close()
            finally:
                compare_server.stop()
            progress(f"compare: {statistics.median(compare_s) * 1000:.0f} ms median over {len(compare_s)} loads")

            run = aq.init(experiment="bench-live", run_id=LIVE_RUN, redis_url=redis_server.url, data_dir=work / "agent")
            for step in range(5):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
            run.flush()
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            deadline = time.monotonic() + 30
            while True:  # the run must be stored before its page can watch it
                page.goto(server.url + f"?run={LIVE_RUN}")
                try:
                    page.wait_for_function(HAS_STEP, arg=[SOURCE, 4], timeout=5_000)
                    break
                except Exception:
                    if time.monotonic() > deadline:
                        raise
            for step in range(5, 5 + size["points"]):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
                started = time.perf_counter()
                page.wait_for_function(HAS_STEP, arg=[SOURCE, step], polling=5, timeout=30_000)
                latencies.append(time.perf_counter() - started)
                time.sleep(0.05)
            run.finish()
            browser.close()
    finally:
        server.stop()
        collector.stop()
        collecting.join(30)
        collector.close()
        redis_server.stop()

    p50, p99 = percentile(latencies, 0.5) * 1000, percentile(latencies, 0.99) * 1000
    page_ms = statistics.median(first_page) * 1000
    warm_ms = statistics.median(warm_page) * 1000
    compare_ms = statistics.median(compare_s) * 1000
    scale = "" if size["runs"] == 10_000 else f" ({size['runs']:,} runs: no verdict on the 10,000-run target)"
    print(
        f"live point -> browser: p50 {p50:.0f} ms, p99 {p99:.0f} ms, max {max(latencies) * 1000:.0f} ms "
        f"over {len(latencies)} points (targets 300 / 1000 ms)"
    )
    print(
        f"first page of {size['runs']:,} runs: median {page_ms:.0f} ms, "
        f"each {', '.join(f'{s * 1000:.0f}' for s in first_page)} ms (target 1500 ms){scale}; "
        f"reloaded with the browser's cache: median {warm_ms:.0f} ms; the page's main thread busy "
        f"{statistics.median(busy) * 1000:.0f} ms, {statistics.median(page_bytes) / 1e6:.2f} MB loaded"
    )
    full_compare = (compare_runs, compare_metrics, compare_steps) == SIZES["full"]["compare"]
    print(
        f"compare {compare_runs} runs x {compare_metrics} metrics x {compare_steps:,} steps "
        f"({overlaid} curves overlaid): median {compare_ms:.0f} ms, each "
        f"{', '.join(f'{s * 1000:.0f}' for s in compare_s)} ms (target 3000 ms); longest main-thread task "
        f"{max(compare_longest):.0f} ms"
    )
    emit_json(
        {
            "bench": "dashboard",
            "mode": "quick" if args.quick else "full",
            "runs": size["runs"],
            "live_points": len(latencies),
            "live_p50_ms": round(p50, 1),
            "live_p99_ms": round(p99, 1),
            "live_max_ms": round(max(latencies) * 1000, 1),
            "first_page_ms": round(page_ms, 1),
            "first_page_each_ms": [round(s * 1000, 1) for s in first_page],
            "first_page_cached_ms": round(warm_ms, 1),
            "first_page_busy_ms": round(statistics.median(busy) * 1000, 1),
            "first_page_bytes": int(statistics.median(page_bytes)),
            "compare_runs": compare_runs,
            "compare_metrics": compare_metrics,
            "compare_steps": compare_steps,
            "compare_curves": overlaid,
            "compare_ms": round(compare_ms, 1),
            "compare_each_ms": [round(s * 1000, 1) for s in compare_s],
            "compare_longest_task_ms": round(max(compare_longest), 1),
            "fill_s": round(fill_s, 2),
            "compare_fill_s": round(compare_fill_s, 2),
            "live_p50_met": p50 <= 300,
            "live_p99_met": p99 <= 1000,
            "first_page_met": page_ms <= 1500 if size["runs"] == 10_000 else None,
            "compare_met": compare_ms <= 3000 if full_compare else None,
        }
    )


if __name__ == "__main__":
    main()
