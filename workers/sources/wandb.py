"""W&B offline run dirs (``wandb/offline-run-<time>-<id>/``), read with ``aquarium.workers.wandb_files``.

- A location is a ``wandb/`` dir, its parent, or one run dir. The run id comes from the W&B
  project and run id, so the same W&B run always maps to the same Aquarium run.
- Name (the display name, else the W&B id), experiment (the group, else the project), params
  from the config (nested dicts as dotted keys), tags (a W&B tag ``a:b`` becomes tag ``a`` = ``b``,
  others have the value ""), history: every numeric value of every row at the row's step and
  ``_timestamp``; start time and end time (start + runtime); status from the exit record (0
  completed, 130 interrupted, 137 killed, 143 terminated, else failed; none: crashed).
- Not imported, and reported: non-numeric history values (images, tables, text), summary keys
  no history row carries, files. A log that ends inside a record (the run crashed while
  writing) is imported up to there and reported; a corrupt one fails, naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..progress import Progress
from ..report import Report
from .base import ImportedRun, ImportedSeries, SourceError

EXIT_STATUSES = {0: "completed", 130: "interrupted", 137: "killed", 143: "terminated"}  # else failed


class WandbSource:
    name = "wandb"

    def list_runs(self, location: str, options: Mapping[str, Any]) -> list[str]:
        from ..wandb_files import run_dirs

        root = Path(location)
        if not root.exists():
            raise SourceError(f"{root} does not exist")
        found = run_dirs(root)
        if not found:
            raise SourceError(f"no W&B offline run dirs (*run-*/ with a .wandb file) under {root}")
        return [str(p.resolve()) for p in found]

    def read_run(
        self, location: str, ref: str, options: Mapping[str, Any], report: Report, progress: Progress
    ) -> ImportedRun:
        from ..wandb_files import WandbFileError, read_run

        try:
            offline = read_run(Path(ref))
        except (WandbFileError, OSError) as e:
            raise SourceError(str(e)) from e
        except Exception as e:  # protobuf's DecodeError: a record that is not a W&B Record
            raise SourceError(f"{ref}: unreadable W&B record ({type(e).__name__}: {e})") from e
        if not offline.run_id:
            raise SourceError(f"{ref}: the W&B log has no run record")
        run = ImportedRun(self.name, f"{offline.project}/{offline.run_id}", ref, name=offline.name or offline.run_id,
                          experiment=offline.group or offline.project or None, params=dict(offline.config),
                          origin={"wandb_id": offline.run_id, "wandb_project": offline.project})  # fmt: skip
        for tag in offline.tags:
            key, sep, value = tag.partition(":")
            run.tags[key if sep else tag] = value if sep else ""
        if offline.notes:
            run.tags["wandb.notes"] = offline.notes
        run.started_at = offline.start_time
        if offline.start_time is not None and offline.runtime is not None:
            run.ended_at = offline.start_time + offline.runtime
        if offline.exit_code is None:
            run.status = "crashed"
            report.note("status", "no exit", "the W&B log has no exit record: crashed")
        else:
            run.status = EXIT_STATUSES.get(offline.exit_code, "failed")
            report.note("status", "exit code", "W&B exit code as status (0 completed, 130 interrupted, 137 killed, "
                        "143 terminated, else failed)",
                        example=f"{offline.exit_code} -> {run.status}")  # fmt: skip
        if not offline.complete:
            report.note("points", "torn log", "the log ends inside a record (the run crashed while writing): "
                        "imported up to there", kept=False, example=ref)  # fmt: skip
        series: dict[str, ImportedSeries] = {}
        for row in offline.history:
            when = float(row.timestamp) if row.timestamp is not None else float("nan")
            for key, value in row.values.items():
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    report.note("points", "not a number", "history values that are not numbers (media, tables, "
                                "text) are not imported", kept=False, example=f"{key}@{row.step}")  # fmt: skip
                    continue
                s = series.setdefault(key, ImportedSeries(key))
                s.steps.append(row.step)
                s.values.append(float(value))
                s.times.append(when)
        run.series = list(series.values())
        for key in sorted(set(offline.summary) - set(series)):
            report.note("points", "summary only", "summary keys no history row carries are not imported",
                        kept=False, example=key)  # fmt: skip
        progress(1, 1, "read")
        return run
