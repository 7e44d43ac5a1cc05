"""The seed's ``ExportManager``: ``export_to_mlflow``, ``export_to_tensorboard``, ``export_batch``.

Each call enqueues one RQ export job per experiment (run) and returns at once with a
``ExportHandles``; ``wait=True`` blocks with a progress bar and returns the result dicts instead:
``{experiment_id: {"success": bool, "platform": ..., "url": ..., "report": ..., "error": ...}}``
(``export_batch``: ``{platform: {experiment_id: ...}}``). A worker (``aquarium worker``) runs the
jobs. W&B runs go online with ``WANDB_API_KEY`` set, else into offline run dirs under ``wandb_dir``
(``WANDB_DIR``, else the current directory) for ``wandb sync``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import redis
from rq.job import Job

from aquarium.agent import env

from .queue import Outcome, enqueue_export, wait_for

PLATFORMS = ("mlflow", "tensorboard", "wandb")


def result_dict(o: Outcome) -> dict[str, Any]:
    return {
        "success": o.status == "finished",
        "platform": o.target,
        "experiment_id": o.run,
        "status": o.status,
        "url": (o.report or {}).get("destination"),
        "report": o.report,
        "error": o.error,
    }


def wandb_options(
    project: str | None, tags: Sequence[str], offline: bool | None, wandb_dir: str | None, per_rank: bool = False
) -> dict[str, Any]:
    """The W&B job's options, resolved here (the worker may run elsewhere, in another directory)."""
    options: dict[str, Any] = {"dir": str(Path(wandb_dir or os.environ.get("WANDB_DIR") or ".").resolve())}
    if project:
        options["project"] = project
    if tags:
        options["tags"] = list(tags)
    if offline is not None:
        options["mode"] = "offline" if offline else "online"
    if per_rank:
        options["per_rank"] = True
    return options


class ExportHandles:
    """The jobs one call enqueued; ``wait()`` gives the seed's result dicts."""

    def __init__(self, jobs: dict[str, Job]) -> None:
        self.jobs = jobs

    def wait(self, progress: bool = True, timeout: float | None = None) -> dict[str, dict[str, Any]]:
        from .progress_bar import JobBars

        jobs = list(self.jobs.values())
        if progress:
            with JobBars(jobs) as bars:
                outcomes = wait_for(jobs, bars.update, timeout=timeout)
        else:
            outcomes = wait_for(jobs, timeout=timeout)
        return {run: result_dict(o) for run, o in zip(self.jobs, outcomes)}


class ExportManager:
    """``ExportManager(manager)``: ``manager`` an ``ExperimentManager``, an ``Api``, a data dir or an
    HTTP API URL (what the worker reads the runs from)."""

    def __init__(self, manager: Any = None, redis_url: str | None = None, **enqueue_options: Any) -> None:
        if manager is None:
            source = os.environ.get("AQUARIUM_DATA_DIR", "aquarium_data")
        elif hasattr(manager, "base_dir"):
            source = str(manager.base_dir)
        elif hasattr(manager, "target"):
            source = str(manager.target)
        else:
            source = os.fspath(manager)
        self.source = source if source.startswith(("http://", "https://")) else str(Path(source).resolve())
        self.connection = redis.Redis.from_url(
            redis_url or os.environ.get("AQUARIUM_REDIS_URL") or env.REDIS_URL.default
        )
        self.enqueue_options = enqueue_options

    def _export(self, platform: str, ids: Sequence[str], options: dict[str, Any], wait: bool) -> Any:
        jobs = {
            i: enqueue_export(self.connection, platform, i, self.source, options, **self.enqueue_options) for i in ids
        }
        handles = ExportHandles(jobs)
        return handles.wait() if wait else handles

    def export_to_mlflow(
        self, experiment_ids: Sequence[str], tracking_uri: str = "http://localhost:5000", wait: bool = False
    ) -> Any:
        return self._export("mlflow", experiment_ids, {"tracking_uri": tracking_uri}, wait)

    def export_to_tensorboard(
        self, experiment_ids: Sequence[str], log_dir: str = "runs/aquarium", wait: bool = False
    ) -> Any:
        return self._export("tensorboard", experiment_ids, {"log_dir": str(Path(log_dir).resolve())}, wait)

    def export_to_wandb(
        self,
        experiment_ids: Sequence[str],
        project_name: str | None = None,
        tags: Sequence[str] = (),
        wait: bool = False,
        offline: bool | None = None,
        wandb_dir: str | None = None,
        per_rank: bool = False,
    ) -> Any:
        """``project_name`` defaults to each run's experiment; ``offline`` None: online only with an API key."""
        options = wandb_options(project_name, tags, offline, wandb_dir, per_rank)
        return self._export("wandb", experiment_ids, options, wait)

    def export_batch(
        self,
        experiment_ids: Sequence[str],
        platforms: Sequence[str] = PLATFORMS,
        wait: bool = False,
        tracking_uri: str = "http://localhost:5000",
        log_dir: str = "runs/aquarium",
        project_name: str | None = None,
        tags: Sequence[str] = (),
    ) -> Any:
        """``{platform: handles}``, or with ``wait`` ``{platform: {experiment_id: result}}``."""
        unknown = [p for p in platforms if p not in PLATFORMS]
        if unknown:
            raise ValueError(f"cannot export to {', '.join(unknown)}: available are {', '.join(PLATFORMS)}")
        calls = {"mlflow": lambda: self.export_to_mlflow(experiment_ids, tracking_uri, wait=wait),
                 "tensorboard": lambda: self.export_to_tensorboard(experiment_ids, log_dir, wait=wait),
                 "wandb": lambda: self.export_to_wandb(experiment_ids, project_name, tags, wait=wait)}  # fmt: skip
        return {p: calls[p]() for p in platforms}

    def close(self) -> None:
        self.connection.close()
