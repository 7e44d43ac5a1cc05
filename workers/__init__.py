"""Export and import jobs (RQ): MLflow, W&B, TensorBoard, JSON, CSV and seed dirs, each with a
kept/not-kept report.

``enqueue_export(redis, "mlflow", run_id, source, {"tracking_uri": ...})`` queues one job on the
``aquarium-exports`` queue (an ``aquarium worker`` runs it); ``run_export(...)`` does the same in
this process. ``ExportManager`` is the seed's API over both. ``import_runs("tensorboard", path)``
imports another tracker's runs (queued, or ``sync=True`` in this process).
"""

from __future__ import annotations

from .compat import ExportManager
from .imports import enqueue_imports, import_here, import_runs
from .jobs import export_run, run_export
from .queue import Outcome, enqueue_export, enqueue_import, export_job_id, export_queue, wait_for
from .report import Report
from .targets import ExportError, Target, get_target, register

__all__ = [
    "ExportError",
    "ExportManager",
    "Outcome",
    "Report",
    "Target",
    "enqueue_export",
    "enqueue_import",
    "enqueue_imports",
    "export_job_id",
    "export_queue",
    "export_run",
    "get_target",
    "import_here",
    "import_runs",
    "register",
    "run_export",
    "wait_for",
]
