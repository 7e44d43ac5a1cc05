"""The data of ``dashboard.py``'s runs list and compare, written into MLflow's sqlite backend
(``_mlflow_fill``), so that ``mlflow_ui.py`` opens MLflow's UI on what our dashboard shows."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from _mlflow_fill import RunRows, connect, finish, write_points, write_runs

# MLflow 3 asks new experiments whether they are GenAI or model training; this tag answers it
KIND_TAG = {"mlflow.experimentKind": "custom_model_development"}


def create_experiments(db_path: Path, artifacts: Path, names: list[str]) -> dict[str, str]:
    """The schema and the experiments, through MlflowClient (its migrations, its rows)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{db_path}")
    return {n: client.create_experiment(n, artifact_location=str(artifacts / n), tags=KIND_TAG) for n in names}


def fill_runs(db_path: Path, artifacts: Path, experiment_id: str, runs: int) -> float:
    """``dashboard.fill``'s runs: run-NNNNN, params lr and batch_size, loss / val_loss /
    accuracy of 10 points each, finished 60 s after they started."""
    import numpy as np

    started = time.perf_counter()
    t0 = time.time() - runs - 3600
    rng = np.random.default_rng(0)
    rows = []
    for i in range(runs):
        start = int((t0 + i) * 1000)
        metrics: dict[str, Any] = {}
        for key in ("loss", "val_loss", "accuracy"):
            values = rng.uniform(0, 2, 10).tolist()
            metrics[key] = [(v, start + s * 1000, s) for s, v in enumerate(values)]
        rid = uuid.UUID(int=i + 1).hex
        rows.append(
            RunRows(
                rid, f"run-{i:05d}", start, start + 60_000, f"{artifacts}/{rid}/artifacts",
                params={"lr": float(rng.choice([1e-4, 3e-4, 1e-3])), "batch_size": 64}, metrics=metrics,
            )
        )  # fmt: skip
    conn = connect(db_path)
    write_runs(conn, experiment_id, rows)
    finish(conn)
    return time.perf_counter() - started


def fill_compare(
    db_path: Path, artifacts: Path, experiment_id: str, runs: int, metrics: int, steps: int
) -> tuple[list[str], float]:
    """``dashboard.fill_compare``'s curves, the same seed and order: the same values."""
    import numpy as np

    started = time.perf_counter()
    step = np.arange(steps, dtype="<i8")
    stamps = ((time.time() - 86_400 + step * 0.01) * 1000).astype("int64").tolist()
    steps_list = step.tolist()
    rng = np.random.default_rng(1)
    start = int((time.time() - 86_400) * 1000)
    ids = [uuid.UUID(int=10**9 + r).hex for r in range(runs)]
    keys = [f"metric_{k:02d}" for k in range(metrics)]
    values = [
        [
            (np.exp(-step / (steps / 5 * (1 + k + r / runs))) + rng.normal(0, 0.02, steps)).tolist()
            for k in range(metrics)
        ]
        for r in range(runs)
    ]  # drawn in dashboard.fill_compare's order (run, then key), written in the primary key's
    conn = connect(db_path)
    write_runs(
        conn,
        experiment_id,
        [
            RunRows(rid, f"bench-compare-{r:02d}", start, start + 60_000, f"{artifacts}/{rid}",
                    params={"lr": 1e-4 * (r + 1), "batch_size": 32 * (1 + r % 3)})
            for r, rid in enumerate(ids)
        ],
    )  # fmt: skip
    for k, key in enumerate(keys):
        rows = ((key, values[r][k][i], stamps[i], ids[r], steps_list[i]) for i in range(steps) for r in range(runs))
        latest = [(key, values[r][k][-1], stamps[-1], steps_list[-1], ids[r]) for r in range(runs)]
        write_points(conn, rows, latest)
    finish(conn)
    return ids, time.perf_counter() - started
