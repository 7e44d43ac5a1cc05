"""Rich progress bars fed from the export jobs' ``meta`` (done, total, phase)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rq.job import Job


class JobBars:
    """One bar per job: ``with JobBars(jobs) as bars: wait_for(jobs, bars.update)``."""

    def __init__(self, jobs: Sequence[Job], console: Console | None = None) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[state]}"),
            TimeElapsedColumn(),
            console=console or Console(stderr=True),
            transient=False,
        )
        self.tasks = {
            job.id: self.progress.add_task(
                f"{job.meta.get('run', '')} → {job.meta.get('target', '')}", total=None, state="queued"
            )
            for job in jobs
        }

    def update(self, job: Job) -> None:
        meta = job.meta
        total = int(meta.get("total") or 0) or None
        state = str(job.get_status(refresh=False).value if job.get_status(refresh=False) else "")
        self.progress.update(self.tasks[job.id], completed=int(meta.get("done") or 0), total=total, state=state)

    def __enter__(self) -> JobBars:
        self.progress.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()
