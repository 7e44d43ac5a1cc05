"""dashboard.py's measures for MLflow's UI, on the same data, side by side with our dashboard.

    python bench/mlflow_ui.py            # 10,000 runs, compare 10 x 10 x 100,000 steps, 60 s live; ~7 min
    python bench/mlflow_ui.py --quick    # 2,000 runs, compare 10 x 10 x 2,000, no live; ~2 min
                                         # (MLflow's server alone boots in 15-45 s on this machine)

Both sides real: a ``python -m mlflow server --backend-store-uri sqlite:/// --workers 1``
subprocess (its UI is served at ``/``), our ``UiServer`` with a collector and a private
redis-server as in dashboard.py, Debian's Chromium driven by Playwright.

Data. MLflow's sqlite gets the schema and experiments from ``MlflowClient`` and the rows that
``SqlAlchemyStore`` writes (``_mlflow_fill``): ``dashboard.fill``'s runs (params lr and
batch_size, loss / val_loss / accuracy, finished) and ``dashboard.fill_compare``'s curves, same
seed, same values. MLflow keeps one ~270-byte sqlite row per point and takes them in at ~80k
rows/s, so the compare is 10 runs x 10 metrics x 100,000 steps (10M rows, ~2.7 GB, ~2 min), not
dashboard.py's 1M steps; our dashboard's compare is measured again at that size here.

1. Runs list: ``page.goto`` in a new browser context until the newest run's name is in the
   table (MLflow: ``#/experiments/ID/runs?workflowType=machine_learning``; ours: ``/`` until the
   first row and the pager count, as dashboard.py). Median of the cold loads; MLflow's first
   page size is read from its ``runs/search`` response.
2. Compare: MLflow's experiment page in chart mode (``compareRunsMode=CHART``, the experiment
   holding only the 10 runs: all are visible, one line chart per metric). Clock from goto to
   every chart that requested ``get-history-bulk-interval`` holding a line with points for each
   run, then two paints; a ``longtask`` observer gives the longest main-thread task. Ours: as
   dashboard.py (``?compare=``, every overlaid line filled, two paints).
3. Live: a RUNNING MLflow run logs ``MlflowClient.log_metric`` once a second for 60 s while its
   chart view is open; each point's latency is when the chart's plotly data first holds its
   step, and every request the page makes is counted (its polling pattern). Ours: 30 points of
   ``run.log`` -> the chart's data source, as dashboard.py.

The last stdout line is the JSON headline.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import dashboard as D
from _common import REDIS_BINARY, emit_json, progress, table
from _mlflow_ui_data import create_experiments, fill_compare, fill_runs
from read import free_port, mlflow_argv, wait_http

SIZES = {
    "full": {"runs": 10_000, "loads": 5, "compare": (10, 10, 100_000), "compare_loads": 3, "live_s": 60, "points": 30},
    "quick": {"runs": 2_000, "loads": 1, "compare": (10, 10, 2_000), "compare_loads": 1, "live_s": 0, "points": 10},
}
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking"]
BULK = "get-history-bulk-interval"
ML_CHARTS = """(runs) => {
    // MLflow's line charts (plotly) and, per chart, how many traces hold points; then the keys of
    // the history requests that have completed (resource timing entries appear on completion)
    const plots = [...document.querySelectorAll('.js-plotly-plot')];
    const filled = plots.filter(p => (p.data || []).filter(d => (d.x || []).length > 0).length >= runs);
    const keys = new Set();
    for (const e of performance.getEntriesByType('resource')) {
        if (e.name.includes('get-history-bulk-interval')) keys.add(new URL(e.name).searchParams.get('metric_key'));
    }
    const points = filled.flatMap(p => p.data.map(d => (d.x || []).length)).filter(n => n > 0);
    return {charts: plots.length, filled: filled.length, keys: keys.size, points};
}"""
ML_MAX_STEP = """() => {
    let best = -1;
    for (const p of document.querySelectorAll('.js-plotly-plot'))
        for (const d of (p.data || [])) for (const x of (d.x || [])) if (typeof x === 'number' && x > best) best = x;
    return best;
}"""
AQ_POINTS = """() => {
    const n = [];
    for (const doc of (window.Bokeh?.documents || []))
        for (const m of (doc.all_models ?? doc._all_models.values()))
            if (m.name === "curves" && m.data_source)
                for (const y of m.data_source.data.ys) if (y.length) n.push(y.length);
    return n;
}"""


def ml_page(root: str, experiment_id: str, chart: bool = False) -> str:
    query = "workflowType=machine_learning" + ("&compareRunsMode=CHART" if chart else "")
    return f"{root}/#/experiments/{experiment_id}/runs?{query}"


def new_page(browser: Any) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    return context, context.new_page()


def ml_runs_list(browser: Any, url: str, newest: str, loads: int) -> dict[str, Any]:
    """Cold loads of MLflow's runs table until the newest run's name shows."""
    times: list[float] = []
    first_page: list[int] = []
    for _ in range(loads):
        context, page = new_page(browser)
        pages: list[Any] = []
        page.on("response", lambda r, into=pages: into.append(r) if "/runs/search" in r.url else None)
        started = time.perf_counter()
        page.goto(url)
        page.get_by_text(newest, exact=True).first.wait_for(timeout=120_000)
        times.append(time.perf_counter() - started)
        if pages:
            first_page.append(len(pages[0].json().get("runs", [])))
        context.close()
    return {"times": times, "first_page": max(first_page) if first_page else None}


def aq_runs_list(browser: Any, url: str, runs: int, loads: int) -> list[float]:
    """dashboard.py's clock: the table's first row and the pager counting every run."""
    times = []
    for _ in range(loads):
        context, page = new_page(browser)
        started = time.perf_counter()
        page.goto(url)
        page.locator("#aq-pager", has_text=f"of {runs:,}").wait_for(timeout=60_000)
        page.locator(D.FIRST_ROW).first.wait_for(timeout=60_000)
        times.append(time.perf_counter() - started)
        context.close()
    return times


def ml_compare(browser: Any, url: str, runs: int, loads: int) -> dict[str, Any]:
    times, longest, charts, points = [], [], 0, []
    for _ in range(loads):
        context, page = new_page(browser)
        page.add_init_script(D.LONG_TASKS)
        started = time.perf_counter()
        page.goto(url)
        cond = f"() => {{ const s = ({ML_CHARTS})({runs}); return s.keys > 0 && s.filled >= s.keys; }}"
        page.wait_for_function(cond, polling=20, timeout=300_000)
        page.evaluate(D.PAINTED)
        times.append(time.perf_counter() - started)
        longest.append(float(page.evaluate("() => window.__aqLongest")))
        state = page.evaluate(f"({ML_CHARTS})({runs})")
        charts, points = state["filled"], state["points"]
        context.close()
    return {"times": times, "longest": longest, "charts": charts, "points": statistics.median(points) if points else 0}


def aq_compare(browser: Any, url: str, curves: int, loads: int) -> dict[str, Any]:
    times, longest, points = [], [], []
    for _ in range(loads):
        context, page = new_page(browser)
        page.add_init_script(D.LONG_TASKS)
        started = time.perf_counter()
        page.goto(url)
        page.wait_for_function(f"() => ({D.CURVES_FILLED})() >= {curves}", polling=20, timeout=180_000)
        page.evaluate(D.PAINTED)
        times.append(time.perf_counter() - started)
        longest.append(float(page.evaluate("() => window.__aqLongest")))
        points = page.evaluate(AQ_POINTS)
        context.close()
    return {"times": times, "longest": longest, "points": statistics.median(points) if points else 0}


def ml_live(browser: Any, root: str, experiment_id: str, seconds: float) -> dict[str, Any]:
    """log_metric once a second on a RUNNING run with its chart view open: when does each step
    reach the chart's data, and what does the page request meanwhile."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(root)
    run_id = client.create_run(experiment_id, run_name="bench-live").info.run_id
    for step in range(5):
        client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
    context, page = new_page(browser)
    requests: list[tuple[float, str]] = []
    page.on("request", lambda r: requests.append((time.perf_counter(), urllib.parse.urlsplit(r.url).path)))
    page.goto(ml_page(root, experiment_id, chart=True))
    page.wait_for_function(f"() => ({ML_MAX_STEP})() >= 4", polling=20, timeout=120_000)
    opened = time.perf_counter()
    before = len(requests)
    logged: dict[int, float] = {}
    seen: dict[int, float] = {}
    step, shown = 5, 4
    next_log = opened
    while time.perf_counter() - opened < seconds:
        now = time.perf_counter()
        if now >= next_log:
            client.log_metric(run_id, "loss", 1.0 / (step + 1), step=step)
            logged[step] = time.perf_counter()
            step += 1
            next_log += 1.0
        newest = int(page.evaluate(ML_MAX_STEP))
        if newest > shown:
            at = time.perf_counter()
            for s in range(shown + 1, newest + 1):
                seen.setdefault(s, at)
            shown = newest
        page.wait_for_timeout(50)  # the page's own poll is what is measured: look 20 times a second
    context.close()
    with contextlib.redirect_stdout(sys.stderr):  # its 'View run at' lines: stdout is the table
        client.set_terminated(run_id)
    window = [(t - opened, path) for t, path in requests[before:]]
    api = [(round(t, 1), path.rsplit("/", 1)[-1]) for t, path in window if "/ajax-api/" in path or "graphql" in path]
    latencies = [seen[s] - logged[s] for s in logged if s in seen]
    return {"logged": len(logged), "seen": len(latencies), "latencies": latencies, "requests": api}


def aq_live(browser: Any, server_url: str, redis_url: str, agent_dir: Path, points: int) -> list[float]:
    """dashboard.py's live measure, shortened: run.log -> the chart's data source holds the step."""
    import aquarium.agent as aq

    run = aq.init(experiment="bench-live", run_id=D.LIVE_RUN, redis_url=redis_url, data_dir=agent_dir)
    for step in range(5):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
    run.flush()
    context, page = new_page(browser)
    deadline = time.monotonic() + 30
    while True:  # the run must be stored before its page can watch it
        page.goto(server_url + f"?run={D.LIVE_RUN}")
        try:
            page.wait_for_function(D.HAS_STEP, arg=[D.SOURCE, 4], timeout=5_000)
            break
        except Exception:
            if time.monotonic() > deadline:
                raise
    latencies = []
    for step in range(5, 5 + points):
        run.log({"loss": 1.0 / (step + 1)}, step=step)
        started = time.perf_counter()
        page.wait_for_function(D.HAS_STEP, arg=[D.SOURCE, step], polling=5, timeout=30_000)
        latencies.append(time.perf_counter() - started)
        page.wait_for_timeout(50)
    run.finish()
    context.close()
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small sizes, no live window (~1 min)")
    args = parser.parse_args()
    size = SIZES["quick" if args.quick else "full"]
    wall = time.perf_counter()
    work = Path(tempfile.mkdtemp(prefix="bench-mlflow-ui-"))
    try:
        out = measure(size, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    report(out, size, "quick" if args.quick else "full", time.perf_counter() - wall)


def measure(size: dict[str, Any], work: Path) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    from aquarium.cli.redis_server import RedisServer
    from aquarium.cli.redis_server import free_port as aq_free_port
    from aquarium.collector import Collector, CollectorSettings
    from aquarium.ui import UiServer, UiSettings, dashboard_for
    from aquarium.ui.views.compare import DEFAULT_OVERLAID

    runs = size["runs"]
    n_runs, n_metrics, n_steps = size["compare"]
    db, artifacts = work / "mlflow.db", work / "mlflow-artifacts"
    progress("mlflow: schema and experiments (MlflowClient)")
    exps = create_experiments(db, artifacts, ["bench-ui", "bench-compare", "bench-live"])
    progress(f"mlflow: {runs:,} runs as rows")
    ml_fill_s = fill_runs(db, artifacts, exps["bench-ui"], runs)
    progress(f"mlflow: {n_runs} runs x {n_metrics} metrics x {n_steps:,} steps as rows")
    _, ml_compare_fill_s = fill_compare(db, artifacts, exps["bench-compare"], n_runs, n_metrics, n_steps)
    port = free_port()
    root = f"http://127.0.0.1:{port}"
    log = (work / "mlflow.log").open("wb")
    proc = subprocess.Popen(
        mlflow_argv(db, artifacts, port), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )
    launched = time.perf_counter()
    progress("aquarium: the same runs and curves into a store (the mlflow server boots meanwhile)")
    data_dir = work / "data"
    aq_fill_s = D.fill(data_dir, runs)
    compare_ids, aq_compare_fill_s = D.fill_compare(work / "compare", n_runs, n_metrics, n_steps)
    overlaid = n_runs * min(DEFAULT_OVERLAID, n_metrics)
    redis_server = RedisServer(aq_free_port(), data_dir=work / "redis", binary=REDIS_BINARY)
    redis_server.start()
    collector = Collector(CollectorSettings.from_env(redis_url=redis_server.url, data_dir=data_dir))
    collecting = threading.Thread(target=collector.run, name="bench-collector", daemon=True)
    collecting.start()
    server = UiServer(dashboard_for(str(data_dir), redis_server.url), UiSettings(port=0)).start()
    compare_server = UiServer(dashboard_for(str(work / "compare"), None), UiSettings(port=0)).start()
    out: dict[str, Any] = {"ml_fill_s": ml_fill_s, "ml_compare_fill_s": ml_compare_fill_s, "aq_fill_s": aq_fill_s}
    out["aq_compare_fill_s"], out["db_bytes"], out["curves"] = aq_compare_fill_s, db.stat().st_size, overlaid
    try:
        wait_http(f"{root}/health", proc, 180, "mlflow server")
        out["ml_boot_s"] = time.perf_counter() - launched
        progress(f"mlflow server up after {out['ml_boot_s']:.0f} s")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=D.CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            progress(f"runs list: {size['loads']} cold loads each")
            if size["loads"] > 1:  # the server's first answers are slow (lazy imports): not a cold page
                ml_runs_list(browser, ml_page(root, exps["bench-ui"]), f"run-{runs - 1:05d}", 1)
            out["ml_list"] = ml_runs_list(
                browser, ml_page(root, exps["bench-ui"]), f"run-{runs - 1:05d}", size["loads"]
            )
            out["aq_list"] = aq_runs_list(browser, server.url, runs, size["loads"])
            progress(f"compare: {size['compare_loads']} cold loads each")
            out["ml_compare"] = ml_compare(
                browser, ml_page(root, exps["bench-compare"], chart=True), n_runs, size["compare_loads"]
            )
            out["aq_compare"] = aq_compare(
                browser, compare_server.url + "?compare=" + ",".join(compare_ids), overlaid, size["compare_loads"]
            )
            if size["live_s"]:
                progress(f"live: mlflow for {size['live_s']} s, aquarium {size['points']} points")
                out["ml_live"] = ml_live(browser, root, exps["bench-live"], size["live_s"])
                out["aq_live"] = aq_live(browser, server.url, redis_server.url, work / "agent", size["points"])
            browser.close()
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        compare_server.stop()
        server.stop()
        collector.stop()
        collecting.join(30)
        collector.close()
        redis_server.stop()
    return out


def _ms(values: list[float]) -> float:
    return statistics.median(values) * 1000 if values else float("nan")


def _pct(values: list[float], q: float) -> float:
    return D.percentile(values, q) * 1000 if values else float("nan")


def _each(values: list[float]) -> str:
    return "/".join(f"{v * 1000:.0f}" for v in values)


def report(out: dict[str, Any], size: dict[str, Any], mode: str, wall_s: float) -> None:
    runs, (n_runs, n_metrics, n_steps) = size["runs"], size["compare"]
    ml_list, aq_list = out["ml_list"], out["aq_list"]
    ml_cmp, aq_cmp = out["ml_compare"], out["aq_compare"]
    list_ml, list_aq = _ms(ml_list["times"]), _ms(aq_list)
    cmp_ml, cmp_aq = _ms(ml_cmp["times"]), _ms(aq_cmp["times"])
    long_ml, long_aq = max(ml_cmp["longest"]), max(aq_cmp["longest"])
    rows = [
        (f"runs list, {runs:,} runs: first page (cold, median)", f"{list_aq:.0f} ms ({_each(aq_list)})",
         f"{list_ml:.0f} ms ({_each(ml_list['times'])})", f"{list_ml / list_aq:.1f}x"),
        ("  rows fetched for the first page", "one page + the count of all",
         f"{ml_list['first_page']} (runs/search)", "-"),
        (f"compare {n_runs} runs x {n_metrics} metrics x {n_steps:,} steps: goto -> lines drawn",
         f"{cmp_aq:.0f} ms ({_each(aq_cmp['times'])})", f"{cmp_ml:.0f} ms ({_each(ml_cmp['times'])})",
         f"{cmp_ml / cmp_aq:.1f}x"),
        ("  lines drawn (charts x runs)", f"{out['curves']} ({out['curves'] // n_runs} overlaid x {n_runs})",
         f"{ml_cmp['charts'] * n_runs} ({ml_cmp['charts']} in view x {n_runs})", "-"),
        ("  points per line", f"{aq_cmp['points']:.0f}", f"{ml_cmp['points']:.0f}", "-"),
        ("  longest main-thread task", f"{long_aq:.0f} ms", f"{long_ml:.0f} ms", f"{long_ml / long_aq:.1f}x"),
    ]  # fmt: skip
    live: dict[str, Any] = {}
    if "ml_live" in out:
        ml, aq = out["ml_live"], out["aq_live"]
        bulk = [t for t, name in ml["requests"] if name == BULK]
        gaps = [b - a for a, b in zip(bulk, bulk[1:])]  # the page's poll period
        if ml["latencies"]:
            ml_text = (
                f"p50 {_pct(ml['latencies'], 0.5):.0f} ms, max {max(ml['latencies']) * 1000:.0f} ms "
                f"({ml['seen']}/{ml['logged']} seen)"
            )
        else:
            ml_text = f"no live update in {size['live_s']} s ({ml['logged']} points logged, 0 seen): needs a reload"
        rows.append(
            ("live: log -> point in the browser",
             f"p50 {_pct(aq, 0.5):.0f} ms, p99 {_pct(aq, 0.99):.0f} ms ({len(aq)} points)",
             ml_text, f"{_pct(ml['latencies'], 0.5) / _pct(aq, 0.5):.0f}x" if ml["latencies"] else "-")
        )  # fmt: skip
        rows.append(
            ("  requests while open", "pushed over the session's websocket",
             f"{len(ml['requests'])} API calls, {len(bulk)} {BULK} (at {', '.join(f'{t:.0f}' for t in bulk[:12])} s)",
             "-")
        )  # fmt: skip
        live = {"ml_live_logged": ml["logged"], "ml_live_seen": ml["seen"],
                "ml_live_p50_ms": _pct(ml["latencies"], 0.5),
                "ml_live_max_ms": max(ml["latencies"]) * 1000 if ml["latencies"] else None,
                "ml_live_requests": len(ml["requests"]), "ml_live_history_polls": len(bulk),
                "ml_live_poll_gap_s": statistics.median(gaps) if gaps else None,
                "aq_live_p50_ms": _pct(aq, 0.5), "aq_live_p99_ms": _pct(aq, 0.99)}  # fmt: skip
        progress("mlflow requests while live: " + json.dumps(ml["requests"][:60]))
    from _common import console

    console().print(
        table(
            f"Our dashboard vs MLflow {_mlflow_version()} UI, same data ({mode})",
            ["measure", "Aquarium", "MLflow UI", "MLflow / Aquarium"],
            rows,
            caption=f"fills: mlflow {out['ml_fill_s']:.1f} s runs + {out['ml_compare_fill_s']:.1f} s compare "
            f"({n_runs * n_metrics * n_steps:,} rows, db {out['db_bytes'] / 1e9:.2f} GB); aquarium "
            f"{out['aq_fill_s']:.1f} s + {out['aq_compare_fill_s']:.1f} s. "
            f"mlflow server boot {out['ml_boot_s']:.0f} s.",
        )
    )
    emit_json(
        {
            "bench": "mlflow_ui", "mode": mode, "runs": runs, "compare_runs": n_runs, "compare_metrics": n_metrics,
            "compare_steps": n_steps, "list_aq_ms": round(list_aq, 1), "list_ml_ms": round(list_ml, 1),
            "list_ml_over_aq": round(list_ml / list_aq, 2), "ml_first_page_rows": ml_list["first_page"],
            "compare_aq_ms": round(cmp_aq, 1), "compare_ml_ms": round(cmp_ml, 1),
            "compare_ml_over_aq": round(cmp_ml / cmp_aq, 2), "compare_aq_lines": out["curves"],
            "compare_ml_lines": ml_cmp["charts"] * n_runs, "compare_aq_points_per_line": aq_cmp["points"],
            "compare_ml_points_per_line": ml_cmp["points"], "longest_task_aq_ms": round(long_aq, 1),
            "longest_task_ml_ms": round(long_ml, 1),
            **{k: round(v, 1) if isinstance(v, float) else v for k, v in live.items()},
            "ml_boot_s": round(out["ml_boot_s"], 1), "wall_s": round(wall_s, 1),
        }
    )  # fmt: skip


def _mlflow_version() -> str:
    import mlflow

    return str(mlflow.__version__)


if __name__ == "__main__":
    main()
