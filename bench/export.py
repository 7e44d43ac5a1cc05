"""Export throughput: Aquarium's MLflow, TensorBoard and W&B-offline targets against each tool's
own writer driven directly by a user script on the same data, as ratios from the same run.

    python bench/export.py            # 10 keys x 100k steps = 1M points per target; ~6-10 min
    python bench/export.py --quick    # < 30 s: 4 keys, 10k/40k/20k points (MLflow/TB/W&B), no workers case
    python bench/export.py --smoke    # the test's size: a few thousand points each

Data: one Aquarium run per target (``keys`` series of ``steps`` points, rank 0), written
straight into a fresh store with wire ``Batch``es. The user-script baselines get the same
values as numpy arrays already in memory (Aquarium's figure includes reading the store).

* MLflow (a fresh ``python -m mlflow server``, sqlite backend, ``--workers`` 1 by default):
  ``run_export("mlflow", ...)`` (what the RQ job runs) into a new MLflow run; the hand-written
  loop ``MlflowClient.log_batch`` of 1000 ``Metric``s at a time into another new run; the seed's
  way, ``mlflow.log_metric`` per point, on a sample (it is ~100x slower); and a re-export of the
  unchanged run (digest tags: nothing read back, nothing sent).
* TensorBoard: ``run_export("tensorboard", ...)`` against a loop of one ``Event`` per scalar
  through tensorboard's ``EventFileWriter`` (what ``SummaryWriter.add_scalar`` does; torch is
  not needed).
* W&B offline (``WANDB_MODE=offline``, no network): ``run_export("wandb", ...)`` against
  ``wandb.init(mode="offline")`` + ``run.log({every key}, step=s)`` per step + ``finish()``.
  wandb's service is started once before either is timed.

MLflow's user script runs before and after Aquarium's export and the faster of the two is the
baseline (the machine's load drifts, and a fresh server is slower at first; 5,000 untimed points
warm it). Points/s = points / wall seconds of the whole export (run creation to finish).
Ratio = Aquarium / baseline (> 1: Aquarium faster). The last stdout line is one JSON object.

Workers (not in --quick): 16 runs of 4 keys × 50k steps exported to TensorBoard as RQ jobs on a
private redis-server by 1, then 4 ``aquarium worker`` processes, started and idle before the
jobs are queued: the wall time from queueing the first job to the last one finished.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

from _common import console, emit_json, progress, table

PARALLEL = {"full": (16, 4, 50_000), "smoke": (4, 1, 1_000)}  # runs, keys, steps (not in --quick)
SIZES = {  # mode: (keys, mlflow steps, tensorboard steps, wandb steps, seed per-point sample)
    "full": (10, 100_000, 100_000, 100_000, 1_000),
    "quick": (4, 2_500, 10_000, 5_000, 50),
    "smoke": (2, 1_000, 2_000, 1_000, 50),
}


def values_of(k: int, steps: Any) -> Any:
    return steps * 0.001 + k


def times_of(steps: Any) -> Any:
    return 1.7e9 + steps * 1e-3


def build_store(path: Path, runs: dict[str, tuple[int, int]]) -> None:
    """Each run: ``keys`` series of ``steps`` points, in batches of 50k steps."""
    import numpy as np

    from aquarium.agent.wire import Batch, BatchId, MetricChunk
    from aquarium.collector import Store

    with Store(path) as store:
        for run_id, (keys, steps) in runs.items():
            for seq, lo in enumerate(range(0, steps, 50_000)):
                s = np.arange(lo, min(steps, lo + 50_000), dtype=np.int64)
                chunks = [
                    MetricChunk(f"m{k}", s.tobytes(), values_of(k, s).tobytes(), times_of(s).tobytes())
                    for k in range(keys)
                ]
                meta = {"name": run_id, "experiment": "bench-export"} if seq == 0 else None
                params = {"lr": 0.001, "batch": 32} if seq == 0 else None
                store.ingest([Batch(BatchId(run_id, 0, "inc-a", seq), chunks, meta=meta, params=params)])


def timed(fn: Any) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_mlflow(root: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    """Started first, so it boots while the other targets are measured; ``wait_healthy`` later."""
    port = free_port()
    log = open(root / "mlflow-server.log", "wb")
    argv = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--workers", str(workers), "--backend-store-uri", f"sqlite:///{root / 'mlflow.db'}"]
    argv += ["--default-artifact-root", str(root / "artifacts")]
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=root, start_new_session=True)
    log.close()
    return process, f"http://127.0.0.1:{port}"


def wait_healthy(root: Path, process: subprocess.Popen[bytes], uri: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=1) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            stop(process)
            raise RuntimeError("mlflow server did not start:\n" + (root / "mlflow-server.log").read_text()[-3000:])
        time.sleep(0.2)


def stop(process: subprocess.Popen[bytes]) -> None:
    """The bench's own server, its data thrown away: no need to wait for a graceful shutdown."""
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(2)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def mlflow_case(
    root: Path,
    source: str,
    keys: int,
    steps: int,
    sample: int,
    server: subprocess.Popen[bytes],
    uri: str,
    threads: int,
) -> dict[str, Any]:
    import mlflow
    import numpy as np
    from mlflow import MlflowClient
    from mlflow.entities import Metric

    from aquarium.workers import run_export

    progress("mlflow: waiting for the server, then one untimed call to warm it")
    wait_healthy(root, server, uri)
    warm = MlflowClient(uri)
    warm_run = warm.create_run(warm.create_experiment("bench-warm-up")).info.run_id
    for chunk in range(5):  # a fresh server's first few thousand points are several times slower
        warm.log_batch(warm_run, metrics=[Metric("warm", 0.0, 0, chunk * 1000 + i) for i in range(1000)])
    try:
        points = keys * steps
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("bench-user-script")

        def user_loop() -> None:
            run_id = client.create_run(experiment_id).info.run_id
            s = np.arange(steps, dtype=np.int64)
            ms = np.round(times_of(s) * 1000).astype(np.int64).tolist()
            metrics: list[Metric] = []
            for k in range(keys):
                for step, value, stamp in zip(s.tolist(), values_of(k, s).tolist(), ms):
                    metrics.append(Metric(f"m{k}", value, stamp, step))
                    if len(metrics) == 1000:
                        client.log_batch(run_id, metrics=metrics)
                        metrics = []
            if metrics:
                client.log_batch(run_id, metrics=metrics)
            with contextlib.redirect_stdout(sys.stderr):  # MLflow prints the run's URL
                client.set_terminated(run_id)

        # the user script before and after Aquarium (the machine's load drifts, and a fresh server's
        # first thousands of points are slower): the faster of the two is the baseline
        progress(f"mlflow: user script, MlflowClient.log_batch loop of {points:,} points")
        before = timed(user_loop)
        progress(f"mlflow: Aquarium export of {points:,} points ({threads} log-batch calls in flight)")
        aquarium = timed(lambda: run_export("mlflow", "ml", source, {"tracking_uri": uri, "threads": threads}))
        progress("mlflow: re-export of the unchanged run")
        again = timed(lambda: run_export("mlflow", "ml", source, {"tracking_uri": uri, "threads": threads}))
        progress("mlflow: the user script again")
        loop = min(before, timed(user_loop))

        def seed_way() -> None:
            mlflow.set_tracking_uri(uri)
            mlflow.set_experiment("bench-seed")
            with mlflow.start_run():
                for step in range(sample):
                    mlflow.log_metric("m0", values_of(0, step), step=step)

        progress(f"mlflow: the seed's per-point log_metric on {sample} points")
        with contextlib.redirect_stdout(sys.stderr):
            seed = timed(seed_way)
        verify = client.search_runs([client.get_experiment_by_name("bench-export").experiment_id])
        got = len(client.get_metric_history(verify[0].info.run_id, "m0"))
        assert got == steps, f"MLflow holds {got} points of m0, not {steps}"
    finally:
        stop(server)
    return {
        "points": points,
        "aquarium": points / aquarium,
        "baseline": points / loop,
        "reexport": points / again,
        "seed_per_point": sample / seed,
    }


def tensorboard_case(root: Path, source: str, keys: int, steps: int) -> dict[str, Any]:
    import numpy as np
    from tensorboard.compat.proto.event_pb2 import Event
    from tensorboard.compat.proto.summary_pb2 import Summary
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    from aquarium.workers import run_export

    points = keys * steps
    progress(f"tensorboard: Aquarium export of {points:,} points")
    aquarium = timed(lambda: run_export("tensorboard", "tb", source, {"log_dir": str(root / "tb-aquarium")}))

    def user_loop() -> None:
        writer = EventFileWriter(str(root / "tb-user"))
        s = np.arange(steps, dtype=np.int64)
        wall = times_of(s).tolist()
        for k in range(keys):
            for step, value, at in zip(s.tolist(), values_of(k, s).tolist(), wall):
                summary = Summary(value=[Summary.Value(tag=f"m{k}", simple_value=value)])
                writer.add_event(Event(wall_time=at, step=step, summary=summary))
        writer.close()

    progress(f"tensorboard: user script, one Event per scalar through EventFileWriter, {points:,} points")
    loop = timed(user_loop)
    return {"points": points, "aquarium": points / aquarium, "baseline": points / loop}


def wandb_case(root: Path, source: str, keys: int, steps: int) -> dict[str, Any]:
    import numpy as np
    import wandb

    from aquarium.workers import run_export

    settings = wandb.Settings(silent=True, console="off", x_disable_stats=True, x_disable_meta=True,
                              x_disable_machine_info=True, disable_git=True, save_code=False)  # fmt: skip
    progress("wandb: starting its service (not timed)")
    warm = wandb.init(mode="offline", id="warm-up", dir=str(root / "wb-warm"), settings=settings, reinit="create_new")
    warm.finish()
    points = keys * steps
    progress(f"wandb: Aquarium export of {points:,} points")
    aquarium = timed(lambda: run_export("wandb", "wb", source, {"dir": str(root / "wb-aquarium")}))

    def user_loop() -> None:
        run = wandb.init(mode="offline", id="user-script", project="bench", dir=str(root / "wb-user"),
                         config={"lr": 0.001, "batch": 32}, settings=settings, reinit="create_new")  # fmt: skip
        s = np.arange(steps, dtype=np.int64)
        columns = [values_of(k, s).tolist() for k in range(keys)]
        wall = times_of(s).tolist()
        for i, step in enumerate(s.tolist()):
            row = {f"m{k}": columns[k][i] for k in range(keys)}
            row["_timestamp"] = wall[i]
            run.log(row, step=step, commit=True)
        run.finish()

    progress(f"wandb: user script, run.log per step, {points:,} points")
    loop = timed(user_loop)
    return {"points": points, "aquarium": points / aquarium, "baseline": points / loop}


def workers_case(root: Path, runs: int, keys: int, steps: int, counts: tuple[int, ...] = (1, 4)) -> dict[str, Any]:
    """``runs`` TensorBoard exports through real RQ (a private redis-server, ``aquarium worker``
    processes, started and idle before the jobs are queued): wall time from queueing the first job
    to the last one finished, per worker count."""
    import redis
    from _processes import redis_server
    from rq import Worker

    from aquarium.workers import enqueue_export, export_queue, wait_for

    source = root / "parallel-store"
    ids = [f"par-{i:02d}" for i in range(runs)]
    build_store(source, {run_id: (keys, steps) for run_id in ids})
    server = redis_server(root / "redis")
    server.start()
    aquarium = str(Path(sys.executable).with_name("aquarium"))
    walls: dict[int, float] = {}
    connection = redis.Redis.from_url(server.url)
    try:
        for n in counts:
            workers = [
                subprocess.Popen(
                    [aquarium, "worker", "--redis-url", server.url],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )  # fmt: skip
                for _ in range(n)
            ]
            deadline = time.monotonic() + 120
            while Worker.count(queue=export_queue(connection)) < n and time.monotonic() < deadline:
                time.sleep(0.1)
            log_dir = root / f"tb-parallel-{n}"
            progress(f"workers: {runs} TensorBoard exports × {keys * steps:,} points, {n} worker(s)")
            started = time.perf_counter()
            jobs = [
                enqueue_export(connection, "tensorboard", run_id, str(source), {"log_dir": str(log_dir)})
                for run_id in ids
            ]
            outcomes = wait_for(jobs, poll=0.05, timeout=1800)
            walls[n] = time.perf_counter() - started
            for worker in workers:
                worker.terminate()
            for worker in workers:
                worker.wait(timeout=60)
            failed = [o for o in outcomes if o.status != "finished"]
            if failed:
                raise RuntimeError(f"{n} worker(s): {len(failed)} of {runs} exports did not finish: {failed[0]}")
    finally:
        connection.close()
        server.stop()
    return {"runs": runs, "points_per_run": keys * steps, "walls": walls}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="under 30 s")
    mode.add_argument("--smoke", action="store_true", help="the test's size")
    parser.add_argument("--server-workers", type=int, default=1, help="mlflow server --workers")
    parser.add_argument("--threads", type=int, default=4, help="log-batch calls Aquarium keeps in flight")
    parser.add_argument("--skip", nargs="*", default=[], choices=["mlflow", "tensorboard", "wandb", "workers"])
    args = parser.parse_args()
    size = "quick" if args.quick else "smoke" if args.smoke else "full"
    keys, ml_steps, tb_steps, wb_steps, sample = SIZES[size]
    os.environ.update({"WANDB_MODE": "offline", "WANDB_SILENT": "true"})
    os.environ.pop("WANDB_API_KEY", None)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="aquarium-bench-export-") as tmp:
        root = Path(tmp)
        os.environ.update({"WANDB_DIR": str(root / "wandb-default"), "WANDB_CONFIG_DIR": str(root / "wandb-config")})
        source = root / "store"
        progress(f"writing the Aquarium store ({size})")
        build_store(source, {"ml": (keys, ml_steps), "tb": (keys, tb_steps), "wb": (keys, wb_steps)})
        results: dict[str, dict[str, Any]] = {}
        server = None
        parallel: dict[str, Any] | None = None
        if "mlflow" not in args.skip:
            progress(f"mlflow: starting a server ({args.server_workers} worker(s)) in the background")
            server, uri = start_mlflow(root, args.server_workers)
        try:
            if "tensorboard" not in args.skip:
                results["tensorboard"] = tensorboard_case(root, str(source), keys, tb_steps)
            if "wandb" not in args.skip:
                results["wandb"] = wandb_case(root, str(source), keys, wb_steps)
            # while the mlflow server boots
            if "workers" not in args.skip and size != "quick":  # worker start-up would be most of --quick
                parallel = workers_case(root, *PARALLEL[size])
            if server is not None:
                results["mlflow"] = mlflow_case(root, str(source), keys, ml_steps, sample, server, uri, args.threads)
        finally:
            if server is not None:
                stop(server)
    baselines = {
        "mlflow": "MlflowClient.log_batch loop",
        "tensorboard": "EventFileWriter loop",
        "wandb": "wandb offline run.log loop",
    }
    rows = []
    for target, r in results.items():
        rows.append((target, f"{r['points']:,}", f"{r['aquarium']:,.0f}", baselines[target], f"{r['baseline']:,.0f}",
                     f"{r['aquarium'] / r['baseline']:.2f}"))  # fmt: skip
    out = console()
    out.print(table(f"Export throughput, points/s ({size})",
                    ["target", "points", "Aquarium", "user script", "user script", "ratio"], rows))  # fmt: skip
    if "mlflow" in results:
        m = results["mlflow"]
        out.print(table("MLflow, other ways", ["way", "points/s"], [
            ("Aquarium re-export of the unchanged run (digest tags)", f"{m['reexport']:,.0f}"),
            ("seed's mlflow.log_metric per point (sample)", f"{m['seed_per_point']:,.0f}"),
            ("goal: Aquarium's export", ">= 50,000"),
        ]))  # fmt: skip
    if parallel is not None:
        walls = parallel["walls"]
        out.print(table(
            f"{parallel['runs']} runs × {parallel['points_per_run']:,} points to TensorBoard through RQ",
            ["workers", "wall s", "speed-up"],
            [(str(n), f"{w:.2f}", f"{walls[min(walls)] / w:.2f}") for n, w in walls.items()],
            caption="This machine has 2 cores: more than 2 workers share them.",
        ))  # fmt: skip
    headline: dict[str, Any] = {"bench": "export", "mode": size, "seconds": round(time.perf_counter() - started, 1)}
    if parallel is not None:
        for n, w in parallel["walls"].items():
            headline[f"parallel_{n}_workers_s"] = round(w, 2)
    for target, r in results.items():
        headline[f"{target}_points_per_s"] = round(r["aquarium"])
        headline[f"{target}_user_script_points_per_s"] = round(r["baseline"])
        headline[f"{target}_ratio"] = round(r["aquarium"] / r["baseline"], 3)
    if "mlflow" in results:
        headline["mlflow_reexport_points_per_s"] = round(results["mlflow"]["reexport"])
        headline["mlflow_seed_per_point_points_per_s"] = round(results["mlflow"]["seed_per_point"])
        headline["mlflow_goal_50k_met"] = results["mlflow"]["aquarium"] >= 50_000
    emit_json(headline)


if __name__ == "__main__":
    main()
