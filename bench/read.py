"""Reading back: a long series as a plot-sized curve, a run search, a history as a DataFrame —
Aquarium against a real MLflow tracking server holding the same data.

    python bench/read.py            # 1M-point series (4 keys), 10,000 runs; ~5-10 min
    python bench/read.py --quick    # < 30 s: 20k-point series, 1,000 runs, no MLflow history
    python bench/read.py --smoke    # the test's size: 10k points, 200 runs (~20 s, mostly MLflow)

One data set is generated once (seeded numpy) and written into both systems:

* a series run: 4 keys (loss, acc, val_loss, lr) × N steps (1M; quick 20k), rank 0;
* R runs (10,000; quick 1,000) with 20 params (``lr`` among 1e-4, 3e-4, 1e-3, 3e-3, 1e-2) and
  10 metric keys of 5 points each; ``val_loss`` only falls, so its last value is its minimum.

Aquarium is filled straight through ``Store(data_dir).ingest`` with wire ``Batch``es (10k steps
× 4 keys per batch, 100 batches per call; one batch per run, 500 runs per call). MLflow gets a
sqlite backend: its schema, the experiments and the series run are created by ``MlflowClient``
on a local ``sqlite:`` URI, the first 1,000 steps of each key go through ``log_batch`` (timed:
the ORM path, reported as MLflow's log rate); the remaining points and the R runs are then
inserted as the very rows ``SqlAlchemyStore`` writes (``runs``, ``tags`` mlflow.runName,
``params``, ``metrics``, ``latest_metrics``) with ``executemany`` — ``log_batch`` costs ~80 ms
per 1,000 points, i.e. minutes per million, which would dominate the benchmark. The server is
started only afterwards, on that same database, and the bench checks through it that it sees
every point and run.

Servers, both fresh subprocesses on 127.0.0.1, started after the data is written:

* ``aquarium api --data-dir D --http-port P`` (the production command, not an in-process
  ``ApiServer`` thread: the client and the server then do not share one interpreter and GIL,
  as with MLflow);
* ``python -m mlflow server --backend-store-uri sqlite:///... --workers 1``.

Measured (client side, this process; first call after server start = "cold", then warm calls
interleaved round-robin between the designs of one case so they see the same machine state):

1. N-point ``loss`` series → 2,000-point curve: ``Store.read_window(samples=2000)`` in process
   (no HTTP: the overhead of the API is the difference), ``Api(url).series(samples=2000)``,
   ``GET /api/runs/RUN/series/loss?samples=2000`` with ``http.client`` + ``json.loads``;
   MLflow: ``MlflowClient(url).get_metric_history`` — MLflow cannot downsample, it returns all
   N points (paged by the client), so the ratio also counts N/2,000 times the data.
2. Search R runs: ``Api(url).search(filter, sort, limit=100)`` (one page + the total) and
   ``Api(url).runs(filter)`` (a DataFrame of every match); MLflow:
   ``MlflowClient.search_runs(max_results=100)`` and ``mlflow.search_runs`` (its DataFrame of
   every match, paged). Filters: Aquarium ``params.lr > 1e-3 and metrics.val_loss.min < 0.3``,
   sorted by ``-metrics.val_loss.min`` (descending). MLflow cannot say that: params are strings
   compared only with =, !=, LIKE, ILIKE (``params.lr > '0.001'`` is refused: "Invalid
   comparator '>'"), and its filters have no ``or``; the equivalent *for this data* lists the
   lr values ≤ 1e-3: ``params.lr != '0.0001' and params.lr != '0.0003' and params.lr != '0.001'
   and metrics.val_loss < 0.3``, ``order_by=["metrics.val_loss DESC"]`` — and MLflow's
   ``metrics.x`` is the *last* value, equal to the min here only because val_loss only falls.
   The bench checks both return the same runs (top 100 in order, and every match).
3. ``history`` of the 4 keys × N steps into a DataFrame (every point): ``Api(data_dir)`` (local)
   and ``Api(url)``; MLflow: 4 × ``get_metric_history`` + one DataFrame (full run only: at
   ~20k points/s it takes minutes).

Targets (issue 7): series over HTTP ≤ 50 ms median (1M points), search ≤ 100 ms (10,000
runs), history ≤ 200 ms (4 × 1M). Sizes smaller than that get no verdict.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common as C
from _mlflow_fill import INSERT_METRIC, RunRows, connect, finish, write_runs

KEYS = ("loss", "acc", "val_loss", "lr")
SERIES_RUN = "bench-read-series"
RUNS_EXPERIMENT = "bench-read-runs"
SERIES_EXPERIMENT = "bench-read-series"
INCARNATION = "00000000000000-bench"
SAMPLES = 2000
STEPS_PER_BATCH = 10_000
BATCHES_PER_INGEST = 100
RUNS_PER_INGEST = 500
LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
RUN_METRICS = ("val_loss", "train_loss", *(f"m{i}" for i in range(2, 10)))
POINTS_PER_RUN_METRIC = 5
AQ_FILTER = "params.lr > 1e-3 and metrics.val_loss.min < 0.3"
AQ_SORT = "-metrics.val_loss.min"
# MLflow has no order comparison on params (only =, !=, LIKE, ILIKE, IS [NOT] NULL) and no `or`:
# for this data's lr values, "lr > 1e-3" is "lr is none of the values <= 1e-3", as strings
ML_FILTER = " and ".join([*(f"params.lr != '{lr}'" for lr in LRS if lr <= 1e-3), "metrics.val_loss < 0.3"])
ML_ORDER = ["metrics.val_loss DESC"]
LIMIT = 100
MLFLOW_LOGGED_STEPS = 1000  # per key through MlflowClient.log_batch; the rest as rows
TARGETS = {"series_ms": 50.0, "search_ms": 100.0, "history_ms": 200.0}
FULL = {"points": 1_000_000, "runs": 10_000}
# MLflow reads ~20k metric points/s (get_metric_history), the first call ~3x slower: its series
# and history get fewer calls (the full run's MLflow history is one call: ~4 minutes)
SIZES = {
    "full": {"points": 1_000_000, "runs": 10_000, "warm": 20, "mlflow_warm": 2, "mlflow_history": True,
             "mlflow_history_warm": 0},
    "quick": {"points": 20_000, "runs": 1_000, "warm": 10, "mlflow_warm": 1, "mlflow_history": False,
              "mlflow_history_warm": 0},
    "smoke": {"points": 10_000, "runs": 200, "warm": 3, "mlflow_warm": 1, "mlflow_history": False,
              "mlflow_history_warm": 0},
}  # fmt: skip


# ============================================================================================
# the data
# ============================================================================================
class Data:
    """Everything both systems get, as numpy arrays and plain dicts."""

    def __init__(self, points: int, runs: int, seed: int = 0) -> None:
        import numpy as np

        rng = np.random.default_rng(seed)
        self.points, self.runs = points, runs
        self.t0 = time.time() - points * 0.01 - 86400
        self.steps = np.arange(points, dtype="<i8")
        self.times = (self.t0 + np.cumsum(np.full(points, 0.01))).astype("<f8")
        base = 1.0 / np.sqrt(self.steps + 1.0)
        self.values = {k: (base * (1.0 + i) + rng.normal(0.0, 0.01, points)).astype("<f8") for i, k in enumerate(KEYS)}
        self.run_names = [f"run-{i:05d}" for i in range(runs)]
        self.run_params: list[dict[str, Any]] = []
        self.run_metrics: list[dict[str, list[float]]] = []
        lrs = rng.choice(np.array(LRS), runs)
        finals = rng.uniform(0.1, 1.0, runs)
        for i in range(runs):
            params: dict[str, Any] = {"lr": float(lrs[i]), "batch_size": int(2 ** rng.integers(4, 10))}
            params.update({f"p{j:02d}": round(float(rng.uniform(0, 100)), 3) for j in range(2, 20)})
            self.run_params.append(params)
            drops = np.sort(rng.uniform(0.0, 0.5, POINTS_PER_RUN_METRIC))[::-1]
            metrics = {"val_loss": [float(finals[i] + d) for d in drops]}  # falls: last == min
            for key in RUN_METRICS[1:]:
                metrics[key] = [float(v) for v in rng.uniform(0.0, 2.0, POINTS_PER_RUN_METRIC)]
            self.run_metrics.append(metrics)
        # what both filters should select (the check that the two searches agree)
        self.expected_matches = sum(
            1 for p, m in zip(self.run_params, self.run_metrics) if p["lr"] > 1e-3 and min(m["val_loss"]) < 0.3
        )


def fill_aquarium(data: Data, data_dir: Path) -> dict[str, float]:
    import numpy as np

    from aquarium.agent.wire import Batch, BatchId, MetricChunk
    from aquarium.collector import Store

    started = time.perf_counter()
    store = Store(data_dir)
    step_b, time_b = data.steps.tobytes(), data.times.tobytes()
    value_b = {k: v.tobytes() for k, v in data.values.items()}
    n_batches = -(-data.points // STEPS_PER_BATCH)
    pending: list[Any] = []
    for seq in range(n_batches):
        a, b = seq * STEPS_PER_BATCH * 8, min(data.points, (seq + 1) * STEPS_PER_BATCH) * 8
        batch = Batch(
            BatchId(SERIES_RUN, 0, INCARNATION, seq),
            metrics=[MetricChunk(k, step_b[a:b], value_b[k][a:b], time_b[a:b]) for k in KEYS],
        )
        if seq == 0:
            batch.meta = {"experiment": SERIES_EXPERIMENT, "name": SERIES_RUN, "started_at": data.t0}
        pending.append(batch)
        if len(pending) == BATCHES_PER_INGEST:
            store.ingest(pending)
            pending = []
    if pending:
        store.ingest(pending)
    series_s = time.perf_counter() - started

    started = time.perf_counter()
    steps = np.arange(POINTS_PER_RUN_METRIC, dtype="<i8").tobytes()
    times = (data.t0 + np.arange(POINTS_PER_RUN_METRIC, dtype="<f8")).tobytes()
    for lo in range(0, data.runs, RUNS_PER_INGEST):
        batches = []
        for i in range(lo, min(data.runs, lo + RUNS_PER_INGEST)):
            chunks = [
                MetricChunk(k, steps, np.asarray(v, dtype="<f8").tobytes(), times)
                for k, v in data.run_metrics[i].items()
            ]
            batches.append(
                Batch(
                    BatchId(f"bench-read-{i:05d}", 0, INCARNATION, 0),
                    metrics=chunks,
                    params=data.run_params[i],
                    meta={"experiment": RUNS_EXPERIMENT, "name": data.run_names[i], "started_at": data.t0 + i},
                    status=[("running", data.t0 + i), ("finished", data.t0 + i + 60)],
                )
            )
        store.ingest(batches)
    runs_s = time.perf_counter() - started
    store.close()
    return {"aq_fill_series_s": series_s, "aq_fill_runs_s": runs_s}


def fill_mlflow(data: Data, db_path: Path, artifacts: Path) -> dict[str, Any]:
    """Schema, experiments and the series run through MlflowClient; the bulk as its rows."""
    from mlflow.entities import Metric
    from mlflow.tracking import MlflowClient

    started = time.perf_counter()
    client = MlflowClient(f"sqlite:///{db_path}")
    series_exp = client.create_experiment(SERIES_EXPERIMENT, artifact_location=str(artifacts / "series"))
    runs_exp = client.create_experiment(RUNS_EXPERIMENT, artifact_location=str(artifacts / "runs"))
    run_id = client.create_run(series_exp, run_name=SERIES_RUN).info.run_id
    ms = (data.times * 1000).astype("int64")
    logged = min(MLFLOW_LOGGED_STEPS, data.points)
    t_log = time.perf_counter()
    for key in KEYS:
        values = data.values[key]
        metrics = [Metric(key, float(values[i]), int(ms[i]), int(i)) for i in range(logged)]
        for lo in range(0, logged, 1000):
            client.log_batch(run_id, metrics=metrics[lo : lo + 1000])
    log_s = time.perf_counter() - t_log
    client.set_terminated(run_id)
    schema_s = time.perf_counter() - started

    started = time.perf_counter()
    conn = connect(db_path)
    conn.execute("BEGIN")
    steps = data.steps.tolist()
    ms_list = ms.tolist()
    for key in KEYS:
        values = data.values[key].tolist()
        conn.executemany(
            INSERT_METRIC,
            ((key, values[i], ms_list[i], run_id, steps[i]) for i in range(logged, data.points)),
        )
        conn.execute(
            "UPDATE latest_metrics SET value = ?, timestamp = ?, step = ? WHERE run_uuid = ? AND key = ?",
            (values[-1], ms_list[-1], steps[-1], run_id, key),
        )
    conn.execute("COMMIT")
    series_s = time.perf_counter() - started

    started = time.perf_counter()
    t0_ms = int(data.t0 * 1000)
    runs = []
    for i in range(data.runs):
        rid = uuid.UUID(int=i + 1).hex
        start = t0_ms + i * 1000
        runs.append(
            RunRows(
                rid, data.run_names[i], start, start + 60_000, f"{artifacts}/runs/{rid}/artifacts",
                params=data.run_params[i],
                metrics={k: [(v, start + s, s) for s, v in enumerate(vs)] for k, vs in data.run_metrics[i].items()},
            )
        )  # fmt: skip
    write_runs(conn, runs_exp, runs)
    finish(conn)
    runs_s = time.perf_counter() - started
    return {
        "run_id": run_id,
        "runs_experiment": str(runs_exp),
        "ml_fill_schema_s": schema_s,
        "ml_fill_series_s": series_s,
        "ml_fill_runs_s": runs_s,
        "ml_log_batch_points_per_s": logged * len(KEYS) / log_s if log_s else None,
    }


# ============================================================================================
# the servers
# ============================================================================================
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float, what: str) -> float:
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.status == 200:
                    return time.perf_counter() - started
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{what} did not answer {url} within {timeout:.0f}s")


class Servers:
    """Subprocess servers: ``launch`` each as soon as its data is written, ``wait`` until every
    one answers its probe (seconds from its own launch); stopped on exit."""

    def __init__(self, timeout: float = 90.0) -> None:
        self.timeout = timeout
        self.procs: list[tuple[subprocess.Popen[bytes], str, str, Path, float]] = []

    def launch(self, argv: list[str], probe: str, what: str, log: Path) -> None:
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append((proc, probe, what, log, time.perf_counter()))

    def wait(self) -> list[float]:
        waits = []
        for proc, probe, what, log, launched in self.procs:
            try:
                wait_http(probe, proc, self.timeout - (time.perf_counter() - launched), what)
            except RuntimeError as exc:
                tail = log.read_text(errors="replace").strip().splitlines()[-8:]
                raise RuntimeError(f"{exc}: " + " | ".join(tail)) from None
            waits.append(time.perf_counter() - launched)
        return waits

    def __enter__(self) -> "Servers":
        return self

    def __exit__(self, *exc: object) -> None:
        for proc, *_ in self.procs:
            proc.terminate()
        for proc, *_ in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def aquarium_argv(data_dir: Path, port: int) -> list[str]:
    binary = Path(sys.executable).with_name("aquarium")
    head = [str(binary)] if binary.exists() else [sys.executable, "-m", "aquarium.cli"]
    return [*head, "api", "--data-dir", str(data_dir), "--http-port", str(port)]


def mlflow_argv(db_path: Path, artifacts: Path, port: int) -> list[str]:
    return [
        sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{db_path}",
        "--default-artifact-root", str(artifacts), "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
    ]  # fmt: skip


# ============================================================================================
# measuring
# ============================================================================================
class Case:
    """One design of one benchmark: ``fn()`` returns how many points/rows it got back."""

    def __init__(self, name: str, fn: Callable[[], Any], warm: int, budget_s: float) -> None:
        self.name, self.fn, self.warm, self.budget_s = name, fn, warm, budget_s
        self.cold_s: float | None = None
        self.times: list[float] = []
        self.result: Any = None
        self.error: str | None = None
        self.spent = 0.0

    def call(self) -> None:
        if self.error:
            return
        started = time.perf_counter()
        try:
            result = self.fn()
        except Exception as exc:  # shown in the table
            self.error = f"{type(exc).__name__}: {exc}"[:300]
            C.progress(f"  {self.name} failed: {self.error}")
            return
        took = time.perf_counter() - started
        self.spent += took
        if self.cold_s is None:
            self.cold_s = took
        else:
            self.times.append(took)
        self.result = result

    def wants_more(self) -> bool:
        return not self.error and len(self.times) < self.warm and (self.spent < self.budget_s or not self.times)

    def stats(self) -> dict[str, Any]:
        s = sorted(self.times)
        n = len(s)
        cold = None if self.cold_s is None else self.cold_s * 1e3
        return {
            "cold_ms": cold,
            "median_ms": C.median(s) * 1e3 if n else None,
            "typical_ms": C.median(s) * 1e3 if n else cold,  # the warm median, else the one cold call
            "p90_ms": s[min(n - 1, max(0, -(-9 * n // 10) - 1))] * 1e3 if n else None,
            "n": n,
            "error": self.error,
        }


def run_cases(cases: Sequence[Case]) -> None:
    """The cold call of each, then warm calls round-robin (order rotated every round)."""
    for case in cases:
        case.call()
    rnd = 0
    while any(c.wants_more() for c in cases):
        shift = rnd % len(cases)
        for case in list(cases[shift:]) + list(cases[:shift]):
            if case.wants_more():
                case.call()
        rnd += 1


def http_get_json(host: str, port: int) -> Callable[[str], Any]:
    conn = http.client.HTTPConnection(host, port, timeout=600)

    def get(path: str) -> Any:
        conn.request("GET", path)
        reply = conn.getresponse()
        body = reply.read()
        if reply.status != 200:
            raise RuntimeError(f"GET {path}: {reply.status} {body[:200]!r}")
        return json.loads(body)

    return get


def mlflow_history_frame(client: Any, run_id: str, keys: Sequence[str]) -> Any:
    import pandas as pd

    columns = {}
    for key in keys:
        history = client.get_metric_history(run_id, key)
        columns[key] = pd.Series([m.value for m in history], index=[m.step for m in history])
    frame = pd.DataFrame(columns)
    frame.index.name = "step"
    return frame


def measure(args: argparse.Namespace, size: dict[str, Any], tmp: Path) -> dict[str, Any]:
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "1800")
    import mlflow
    import pandas as pd
    from mlflow.tracking import MlflowClient

    from aquarium.collector import Api, Store

    out: dict[str, Any] = {"size": size}
    C.progress(f"generating {size['points']:,} steps × {len(KEYS)} keys and {size['runs']:,} runs")
    data = Data(size["points"], size["runs"])
    data_dir, db_path, artifacts = tmp / "aquarium", tmp / "mlflow.db", tmp / "artifacts"
    aq_port, ml_port = free_port(), free_port()
    aq_url, ml_url = f"http://127.0.0.1:{aq_port}", f"http://127.0.0.1:{ml_port}"
    with Servers() as servers:
        # each server starts once its own data is written (MLflow's takes seconds to come up)
        C.progress("filling mlflow's sqlite backend")
        fill = fill_mlflow(data, db_path, artifacts)
        out.update({k: v for k, v in fill.items() if k not in ("run_id", "runs_experiment")})
        run_id, exp_id = fill["run_id"], fill["runs_experiment"]
        servers.launch(mlflow_argv(db_path, artifacts, ml_port), f"{ml_url}/health", "mlflow server", tmp / "ml.log")
        C.progress("filling the aquarium store")
        out.update(fill_aquarium(data, data_dir))
        servers.launch(aquarium_argv(data_dir, aq_port), f"{aq_url}/api/health", "aquarium api", tmp / "aq.log")
        C.progress("waiting for mlflow server and aquarium api")
        out["ml_start_s"], out["aq_start_s"] = servers.wait()
        mlflow.set_tracking_uri(ml_url)
        ml = MlflowClient(ml_url)
        api = Api(aq_url)
        local = Api(data_dir)
        store = Store(data_dir, read_only=True)
        get = http_get_json("127.0.0.1", aq_port)
        warm, ml_warm = size["warm"], size["mlflow_warm"]
        budget = 60.0 if args.quick or args.smoke else 600.0

        # 1. the series as a curve ------------------------------------------------------
        C.progress(f"1. {size['points']:,}-point series → {SAMPLES:,}-point curve")
        series_path = f"/api/runs/{SERIES_RUN}/series/loss?samples={SAMPLES}"
        cases = [
            Case("store", lambda: len(store.read_window(SERIES_RUN, "loss", samples=SAMPLES)), warm, budget),
            Case("api", lambda: len(api.series(SERIES_RUN, "loss", samples=SAMPLES)), warm, budget),
            Case("http", lambda: _json_points(get(series_path)), warm, budget),
            Case("mlflow", lambda: len(ml.get_metric_history(run_id, "loss")), ml_warm, budget),
        ]
        run_cases(cases)
        out["series"] = {c.name: {**c.stats(), "points": c.result} for c in cases}

        # 2. search ----------------------------------------------------------------------
        C.progress(f"2. search {size['runs']:,} runs")
        cases = [
            Case("search", lambda: _page(api.search(filter=AQ_FILTER, sort=AQ_SORT, limit=LIMIT)), warm, budget),
            Case("runs", lambda: _frame_names(api.runs(filter=AQ_FILTER, sort=AQ_SORT)), warm, budget),
            Case(
                "mlflow_search",
                lambda: [
                    r.info.run_name
                    for r in ml.search_runs([exp_id], filter_string=ML_FILTER, order_by=ML_ORDER, max_results=LIMIT)
                ],
                warm,
                budget,
            ),
            Case(
                "mlflow_runs",
                lambda: list(
                    mlflow.search_runs([exp_id], filter_string=ML_FILTER, order_by=ML_ORDER, output_format="pandas")[
                        "tags.mlflow.runName"
                    ]
                ),
                warm,
                budget,
            ),
        ]
        run_cases(cases)
        out["search"] = {c.name: {**c.stats(), "rows": _count(c.result)} for c in cases}
        out["search_check"] = _search_check(cases, data)

        # 3. history into a DataFrame -------------------------------------------------------
        C.progress(f"3. history of {len(KEYS)} keys × {size['points']:,} steps")
        cases = [
            Case("local", lambda: _frame_points(local.history(SERIES_RUN, list(KEYS))), warm, budget),
            Case("api", lambda: _frame_points(api.history(SERIES_RUN, list(KEYS))), warm, budget),
        ]
        if size["mlflow_history"]:
            history_warm = size["mlflow_history_warm"]
            cases.append(
                Case("mlflow", lambda: _frame_points(mlflow_history_frame(ml, run_id, KEYS)), history_warm, budget)
            )
        run_cases(cases)
        out["history"] = {c.name: {**c.stats(), "points": c.result} for c in cases}
        # what the servers saw of the data: every run and every point
        out["ml_sees"] = {
            "runs": len(mlflow.search_runs([exp_id], output_format="list", max_results=50_000)),
            "series_points": out["series"]["mlflow"]["points"],
        }
        out["aq_sees"] = {"runs": None, "series_points": store.read_window(SERIES_RUN, "loss").total}
        with contextlib.suppress(Exception):  # a failed search is already in its table
            out["aq_sees"]["runs"] = api.search(filter=f"experiment == '{RUNS_EXPERIMENT}'", limit=1).total
        store.close()
        del pd
    return out


def _json_points(body: Any) -> int:
    if isinstance(body, dict):
        for name in ("steps", "step"):
            if name in body:
                return len(body[name])
        for value in body.values():
            if isinstance(value, dict) and "steps" in value:
                return len(value["steps"])
    return len(body)


def _page(page: Any) -> dict[str, Any]:
    return {"names": [r["name"] if isinstance(r, dict) else r.name for r in page.runs], "total": page.total}


def _frame_names(frame: Any) -> list[str]:
    return list(frame["name"]) if "name" in frame.columns else list(frame.index)


def _frame_points(frame: Any) -> int:
    return int(frame.notna().sum().sum())


def _count(result: Any) -> int | None:
    if isinstance(result, dict):
        return len(result["names"])
    return None if result is None else len(result)


def _search_check(cases: Sequence[Case], data: Data) -> dict[str, Any]:
    by = {c.name: c.result for c in cases}
    page = by.get("search") or {}
    return {
        "expected_matches": data.expected_matches,
        "aq_total": page.get("total"),
        "aq_runs_rows": _count(by.get("runs")),
        "ml_runs_rows": _count(by.get("mlflow_runs")),
        "same_page": page.get("names") is not None and page.get("names") == by.get("mlflow_search"),
        "same_matches": by.get("runs") is not None
        and by.get("mlflow_runs") is not None
        and sorted(by["runs"]) == sorted(by["mlflow_runs"]),
    }


# ============================================================================================
# report
# ============================================================================================
def report(out: dict[str, Any], mode: str, total_s: float) -> None:
    con = C.console()
    size = out["size"]
    n, r = size["points"], size["runs"]
    scaled = "" if mode == "full" else f" ({mode}: {n:,} points, {r:,} runs — not the issue's sizes)"

    def ratio(a: dict[str, Any], b: dict[str, Any], key: str = "typical_ms") -> str:
        if not a.get(key) or not b.get(key):
            return "-"
        return C.fmt(b[key] / a[key]) + "×"

    def rows_for(section: dict[str, Any], labels: dict[str, str], base: str | None, count: str) -> list[list[str]]:
        rows = []
        for name, label in labels.items():
            s = section.get(name)
            if s is None:
                continue
            if s.get("error"):
                rows.append([label, f"[red]{s['error'][:60]}[/red]", "-", "-", "-", "-", "-"])
                continue
            vs = ratio(s, section[base]) if base and name != base and base in section else "-"
            rows.append(
                [
                    label,
                    C.fmt(s["median_ms"]),
                    C.fmt(s["p90_ms"]),
                    C.fmt(s["cold_ms"]),
                    str(s["n"]),
                    "-" if s.get(count) is None else f"{s[count]:,}",
                    vs,
                ]
            )
        return rows

    cols = ["design", "median ms", "p90 ms", "cold ms", "warm calls", "{}", "MLflow / this"]
    series = out["series"]
    con.print(
        C.table(
            f"1. A {n:,}-point series → a {SAMPLES:,}-point curve{scaled}",
            [c.format("points back") for c in cols],
            rows_for(
                series,
                {
                    "store": "aquarium Store.read_window (in process, no HTTP)",
                    "api": "aquarium Api(url).series",
                    "http": "aquarium GET …/series/loss (http.client + json)",
                    "mlflow": "mlflow get_metric_history (every point)",
                },
                "mlflow",
                "points",
            ),
            caption="MLflow / this: MLflow's median over this design's (MLflow returns every point; it has no "
            "downsampling; its cold call when it had no warm one). cold: the first call after the servers started.",
        )
    )
    con.print()
    search = out["search"]
    check = out["search_check"]
    rows = rows_for(
        search,
        {"search": "aquarium Api.search (limit 100)", "mlflow_search": "mlflow MlflowClient.search_runs (100)"},
        "mlflow_search",
        "rows",
    ) + rows_for(
        search,
        {"runs": "aquarium Api.runs → DataFrame (all)", "mlflow_runs": "mlflow.search_runs → DataFrame (all)"},
        "mlflow_runs",
        "rows",
    )
    con.print(
        C.table(
            f"2. Search {r:,} runs × 20 params × 10 metrics{scaled}",
            [c.format("runs back") for c in cols],
            rows,
            caption=f"aquarium: {AQ_FILTER!r} sort {AQ_SORT!r}; mlflow: {ML_FILTER!r} order_by {ML_ORDER}. "
            f"matches expected {check['expected_matches']:,}, aquarium total {check['aq_total']}, "
            f"same top 100: {check['same_page']}, same matches: {check['same_matches']}.",
        )
    )
    con.print()
    history = out["history"]
    con.print(
        C.table(
            f"3. history: {len(KEYS)} keys × {n:,} steps into a DataFrame{scaled}",
            [c.format("points back") for c in cols],
            rows_for(
                history,
                {
                    "local": "aquarium Api(data_dir).history",
                    "api": "aquarium Api(url).history",
                    "mlflow": "mlflow 4 × get_metric_history + DataFrame",
                },
                "mlflow",
                "points",
            ),
            caption=None if "mlflow" in history else "MLflow's history is measured in the full run only.",
        )
    )
    con.print()
    con.print(
        C.table(
            "Setup (seconds)",
            ["what", "aquarium", "mlflow"],
            [
                ["series fill", C.fmt(out["aq_fill_series_s"]), C.fmt(out["ml_fill_series_s"]) + " (rows)"],
                ["runs fill", C.fmt(out["aq_fill_runs_s"]), C.fmt(out["ml_fill_runs_s"]) + " (rows)"],
                ["schema + client logging", "-", C.fmt(out["ml_fill_schema_s"])],
                ["server start", C.fmt(out["aq_start_s"]), C.fmt(out["ml_start_s"])],
                [
                    "log rate (points/s)",
                    "see bench/ingest.py",
                    C.fmt(out["ml_log_batch_points_per_s"]) + " (MlflowClient.log_batch, sqlite)",
                ],
                [
                    "runs / series points the server sees",
                    f"{out['aq_sees']['runs'] or 0:,} / {out['aq_sees']['series_points']:,}",
                    f"{out['ml_sees']['runs']:,} / {out['ml_sees']['series_points'] or 0:,}",
                ],
            ],
        )
    )
    con.print()

    full_series, full_runs = n >= FULL["points"], r >= FULL["runs"]
    t = TARGETS

    def med(section: dict[str, Any], name: str) -> float:
        v = section.get(name, {}).get("typical_ms")
        return float("nan") if v is None else float(v)

    checks: list[tuple[str, str, str, str, bool | None]] = [
        (
            "series_http_ms",
            f"series → curve over HTTP (Api.series), {n:,} points" + ("" if full_series else ": no verdict"),
            f"≤ {t['series_ms']:g} ms median",
            C.fmt(med(series, "api")),
            _le(med(series, "api"), t["series_ms"]) if full_series else None,
        ),
        (
            "search_ms",
            f"Api.search over {r:,} runs" + ("" if full_runs else ": no verdict"),
            f"≤ {t['search_ms']:g} ms median",
            C.fmt(med(search, "search")),
            _le(med(search, "search"), t["search_ms"]) if full_runs else None,
        ),
        (
            "history_local_ms",
            f"Api(data_dir).history, {len(KEYS)} × {n:,}" + ("" if full_series else ": no verdict"),
            f"≤ {t['history_ms']:g} ms median",
            C.fmt(med(history, "local")),
            _le(med(history, "local"), t["history_ms"]) if full_series else None,
        ),
        (
            "history_http_ms",
            f"Api(url).history, {len(KEYS)} × {n:,}" + ("" if full_series else ": no verdict"),
            f"≤ {t['history_ms']:g} ms median",
            C.fmt(med(history, "api")),
            _le(med(history, "api"), t["history_ms"]) if full_series else None,
        ),
    ]
    same = bool(check["same_page"] and check["same_matches"] and check["aq_total"] == check["expected_matches"])
    checks.append(("same_answers", "both systems return the same runs", "yes", "yes" if same else "no", same))
    con.print(C.targets_table([c[1:] for c in checks], title=f"Targets (aquarium; {mode} run, {total_s:.0f} s)"))

    def over(section: dict[str, Any], a: str, b: str) -> float:
        return med(section, b) / med(section, a)

    head: dict[str, Any] = {
        "bench": "read",
        "mode": mode,
        "quick": mode != "full",
        "points": n,
        "runs": r,
        "series_store_ms": med(series, "store"),
        "series_api_ms": med(series, "api"),
        "series_api_p90_ms": series.get("api", {}).get("p90_ms"),
        "series_api_cold_ms": series.get("api", {}).get("cold_ms"),
        "series_http_ms": med(series, "http"),
        "series_http_p90_ms": series.get("http", {}).get("p90_ms"),
        "series_mlflow_ms": med(series, "mlflow"),
        "series_mlflow_points": series.get("mlflow", {}).get("points"),
        "series_mlflow_over_api": over(series, "api", "mlflow"),
        "search_ms": med(search, "search"),
        "search_mlflow_ms": med(search, "mlflow_search"),
        "search_mlflow_over_aquarium": over(search, "search", "mlflow_search"),
        "runs_df_ms": med(search, "runs"),
        "runs_df_mlflow_ms": med(search, "mlflow_runs"),
        "runs_df_mlflow_over_aquarium": over(search, "runs", "mlflow_runs"),
        "search_matches": check["aq_total"],
        "history_local_ms": med(history, "local"),
        "history_api_ms": med(history, "api"),
        "history_mlflow_ms": med(history, "mlflow"),
        "history_mlflow_over_api": over(history, "api", "mlflow"),
        "same_answers": same,
        "targets_met": {c[0]: c[4] for c in checks},
        "wall_s": round(total_s, 1),
    }
    C.emit_json(C.clean_nan(head))


def _le(value: float, limit: float) -> bool | None:
    return None if value != value else value <= limit


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="under 30 s: 20k points, 1,000 runs, no MLflow history")
    parser.add_argument("--smoke", action="store_true", help="the test's size: 10k points, 200 runs")
    parser.add_argument("--points", type=int, help="steps per key of the series run")
    parser.add_argument("--runs", type=int, help="runs to search")
    parser.add_argument("--warm", type=int, help="warm calls per design (MLflow's series/history: fewer)")
    parser.add_argument("--mlflow-history", action=argparse.BooleanOptionalAction, default=None)
    parser.add_argument("--keep", help="write the data under this directory and keep it")
    args = parser.parse_args()
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    size = dict(SIZES[mode])
    for name in ("points", "runs", "warm"):
        if getattr(args, name):
            size[name] = getattr(args, name)
    if args.mlflow_history is not None:
        size["mlflow_history"] = args.mlflow_history
    started = time.perf_counter()
    tmp = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="aqbench-read-"))
    tmp.mkdir(parents=True, exist_ok=True)
    try:
        out = measure(args, size, tmp)
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)
    report(out, mode, time.perf_counter() - started)


if __name__ == "__main__":
    main()
