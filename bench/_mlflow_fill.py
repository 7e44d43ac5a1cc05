"""MLflow's sqlite backend filled as ``SqlAlchemyStore`` fills it, without its ORM.

``log_batch`` costs ~80 ms per 1,000 points (minutes per million), which would dominate a
benchmark: the schema is created by ``MlflowClient`` on a local ``sqlite:`` URI, then the bulk
goes in as the very rows the store writes (``runs``, ``tags`` mlflow.runName, ``params``,
``metrics``, ``latest_metrics``) with ``executemany``. Used by ``read.py`` and ``mlflow_ui.py``.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

INSERT_METRIC = "INSERT INTO metrics (key, value, timestamp, run_uuid, step, is_nan) VALUES (?, ?, ?, ?, ?, 0)"
INSERT_LATEST = (
    "INSERT OR REPLACE INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid) VALUES (?, ?, ?, ?, 0, ?)"
)


@dataclass
class RunRows:
    """One run as rows: ``metrics`` maps a key to its (value, timestamp ms, step) points, in step
    order (the last one is the run's latest value)."""

    run_id: str
    name: str
    start_ms: int
    end_ms: int | None
    artifact_uri: str
    status: str = "FINISHED"
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Sequence[tuple[float, int, int]]] = field(default_factory=dict)


def connect(db_path: Path) -> sqlite3.Connection:
    """A connection in autocommit mode (the writers open their own transactions), WAL."""
    conn = sqlite3.connect(db_path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    return conn


def write_runs(conn: sqlite3.Connection, experiment_id: str | int, runs: Iterable[RunRows]) -> None:
    """Every row of ``runs`` in one transaction."""
    run_rows: list[tuple[Any, ...]] = []
    tag_rows: list[tuple[str, str, str]] = []
    param_rows: list[tuple[str, str, str]] = []
    metric_rows: list[tuple[str, float, int, str, int]] = []
    latest_rows: list[tuple[str, float, int, int, str]] = []
    for run in runs:
        rid = run.run_id
        run_rows.append(
            (rid, run.name, "UNKNOWN", "", "", "bench", run.status, run.start_ms, run.end_ms, "", "active",
             run.artifact_uri, int(experiment_id))
        )  # fmt: skip
        tag_rows.append(("mlflow.runName", run.name, rid))
        param_rows.extend((k, str(v), rid) for k, v in run.params.items())
        for key, points in run.metrics.items():
            metric_rows.extend((key, v, ts, rid, s) for v, ts, s in points)
            if points:
                v, ts, s = points[-1]
                latest_rows.append((key, v, ts, s, rid))
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id, status, start_time,"
        " end_time, source_version, lifecycle_stage, artifact_uri, experiment_id) VALUES"
        " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        run_rows,
    )
    conn.executemany("INSERT INTO tags (key, value, run_uuid) VALUES (?, ?, ?)", tag_rows)
    conn.executemany("INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)", param_rows)
    conn.executemany(INSERT_METRIC, metric_rows)
    conn.executemany(INSERT_LATEST, latest_rows)
    conn.execute("COMMIT")


def write_points(
    conn: sqlite3.Connection,
    rows: Iterable[tuple[str, float, int, str, int]],
    latest: Iterable[tuple[str, float, int, int, str]],
) -> None:
    """Long series in one transaction, streamed: ``rows`` are (key, value, timestamp ms, run id,
    step), best in the primary key's order (key, timestamp, step, run) so the index only grows
    at its end; ``latest`` the (key, value, timestamp, step, run id) of each series' last point."""
    conn.execute("BEGIN")
    conn.executemany(INSERT_METRIC, rows)
    conn.executemany(INSERT_LATEST, latest)
    conn.execute("COMMIT")


def finish(conn: sqlite3.Connection) -> None:
    """Checkpoint the WAL and refresh the planner's statistics before the server opens the file."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("ANALYZE")
    conn.close()
