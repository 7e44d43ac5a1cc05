"""Weights & Biases: ``wandb.init(id=<from the Aquarium run id>, resume="allow")``, one row per step.

- Mode: ``online`` when ``WANDB_API_KEY`` is set (or ``mode="online"``), else ``offline``: a run
  directory ``<dir>/wandb/offline-run-<time>-<id>/`` that ``wandb sync`` uploads later.
- Id: the Aquarium run id when W&B takes it as is, else a readable prefix and a hash; with
  ``per_rank`` each rank is its own W&B run ``<id>-rank<k>`` (grouped by the Aquarium run id),
  otherwise rank k>0 series are ``<key>/rank<k>`` in the one run.
- History: every point of a step in one ``run.log(row, step=step, commit=True)``, in step order
  (W&B drops a row whose step is not above the last one, and negative steps); the row's
  ``_timestamp`` is its latest point time. Config from params, tags from the tags (``name`` or
  ``name:value``, W&B's 64 characters) and the ``tags`` option, the status as the exit code, the
  Aquarium fields W&B has no place for in ``summary["aquarium"]``.
- Re-export: offline, the new directory replaces every earlier offline directory of the same id
  (removed once the new one is complete), so ``wandb sync`` of the wandb dir sends one copy;
  online, ``resume="allow"`` continues the same run, whose server keeps one row per step.
- Artifacts (``wandb_artifacts``): files as a ``wandb.Artifact`` of type ``file``, models each
  an artifact of type ``model``, raster images also as ``wandb.Image`` in the history; with
  ``per_rank`` every rank's artifacts go with rank 0's W&B run.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..progress import Progress
from ..report import Report
from .artifacts import plan
from .base import ExportError, Series, iter_series, rank_key, start_time, total_points
from .wandb_artifacts import WandbArtifacts

if TYPE_CHECKING:
    from aquarium.collector import Api

MAX_TAG = 64
MAX_ID = 64
RESERVED = ("_step", "_runtime", "_timestamp", "_wandb")
EXIT_CODES = {"completed": 0, "running": 0, "failed": 1, "crashed": 1, "killed": 137, "terminated": 143,
              "interrupted": 130}  # fmt: skip
_ID_UNSAFE = re.compile(r"[^A-Za-z0-9_.\-]")


def wandb_id(run_id: str, rank: int | None = None) -> str:
    """The W&B run id of an Aquarium run (and rank): the same on every export."""
    base = run_id if rank is None else f"{run_id}-rank{rank}"
    safe = _ID_UNSAFE.sub("-", base)
    if safe == base and len(base) <= MAX_ID:
        return base
    digest = hashlib.sha256(base.encode()).hexdigest()[:12]
    return f"{safe[: MAX_ID - 13]}-{digest}"


def wandb_key(key: str) -> str:
    """Metric names W&B keeps for itself (``_step``...) or drops (empty) get an ``aquarium`` prefix."""
    if not key:
        return "aquarium/empty"
    return f"aquarium/{key}" if key.startswith(RESERVED) else key


def wandb_tags(run: Mapping[str, Any], extra: Sequence[str], report: Report) -> list[str]:
    tags = [str(t) for t in extra]
    for name, value in sorted((run.get("tags") or {}).items()):
        tags.append(str(name) if value in ("", None) else f"{name}:{value}")
        report.keep("tags")
    fixed = []
    for tag in tags:
        if not tag.strip():
            continue
        if len(tag) > MAX_TAG:
            report.note("tags", "truncated", f"cut to W&B's {MAX_TAG} characters", example=tag[:MAX_TAG])
            tag = tag[:MAX_TAG]
        if tag not in fixed:
            fixed.append(tag)
    if run.get("tags"):
        report.note("tags", "name:value", "W&B tags are labels: name, or name:value", len(run["tags"]))
    return fixed


def _replace(new: Path, wandb_dir: Path, wid: str) -> Path:
    """Move the finished offline run dir ``new`` into ``wandb_dir``; every earlier export of the
    same id there is removed (a crashed export's leftovers too), so one copy remains."""
    final = wandb_dir / new.name
    trash = wandb_dir / f".trash-{wid}-{uuid.uuid4().hex[:8]}"
    trash.mkdir()
    for old in wandb_dir.glob(f"*-{wid}"):
        if old.is_dir() and (old / f"run-{wid}.wandb").exists():
            os.rename(old, trash / old.name)
    os.rename(new, final)
    scratch = new.parent.parent
    for left in wandb_dir.glob(f".export-{wid}-*"):  # this export's scratch, and a killed one's
        if left == scratch or not left.samefile(scratch):
            shutil.rmtree(left, ignore_errors=True)
    shutil.rmtree(trash, ignore_errors=True)
    return final


def _mode(options: Mapping[str, Any]) -> str:
    mode = str(options.get("mode") or ("online" if os.environ.get("WANDB_API_KEY") else "offline"))
    if mode not in ("online", "offline"):
        raise ExportError(f"the W&B mode is online or offline, not {mode!r}", permanent=True)
    return mode


class WandbTarget:
    name = "wandb"

    def export(self, api: Api, run_id: str, options: Mapping[str, Any], progress: Progress) -> Report:
        mode = _mode(options)
        base = Path(str(options.get("dir") or os.environ.get("WANDB_DIR") or ".")).resolve()
        run = api.run(run_id)
        report = Report(self.name, run_id)
        try:
            (base / "wandb").mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ExportError(f"cannot write under {base}: {e}", permanent=True) from e
        project = str(options.get("project") or run.get("experiment") or "aquarium")
        per_rank = bool(options.get("per_rank"))
        everything = list(iter_series(api, run))
        ranks: list[int | None] = [None]  # None: every rank in one W&B run
        if per_rank:
            ranks = [*sorted({s.rank for s in everything} or {0})]
        planned = plan(api, run_id, report)
        if per_rank and len(ranks) > 1 and planned:
            report.note("artifacts", "per rank", "every rank's artifacts go with rank 0's W&B run", len(planned))
        total, done = total_points(run), 0
        progress(0, total, "history")
        destinations = []
        for rank in ranks:
            series = [s for s in everything if rank is None or s.rank == rank]
            try:
                files = WandbArtifacts(api, run_id, base / "wandb", wandb_id(run_id, rank),
                                       planned if rank == ranks[0] else [])  # fmt: skip
            except OSError as e:
                raise ExportError(f"cannot write the artifacts under {base / 'wandb'}: {e}", permanent=True) from e
            where, done = self._one(run, rank, series, files, project, mode, base, options, report, progress, done,
                                    total)  # fmt: skip
            files.prune()
            destinations.append(where)
        report.destination = destinations[0] if len(destinations) == 1 else f"{base / 'wandb'} ({len(ranks)} runs)"
        progress(done, total, "history")
        return report

    def _one(
        self,
        run: dict[str, Any],
        rank: int | None,
        series: list[Series],
        files: WandbArtifacts,
        project: str,
        mode: str,
        base: Path,
        options: Mapping[str, Any],
        report: Report,
        progress: Progress,
        done: int,
        total: int,
    ) -> tuple[str, int]:
        import wandb

        first = rank in (None, 0)  # params, tags, status and times are counted once per Aquarium run
        scratch = Report(self.name, run["id"])
        tags = wandb_tags(run, options.get("tags") or [], report if first else scratch)
        wid = wandb_id(run["id"], rank)
        work = base / "wandb" / f".export-{wid}-{uuid.uuid4().hex[:8]}"  # offline: written here, then moved
        work.mkdir()
        name = run.get("name") or run["id"]
        settings = wandb.Settings(
            silent=True, console="off", x_disable_stats=True, x_disable_meta=True, x_disable_machine_info=True,
            disable_git=True, disable_job_creation=True, save_code=False,
        )  # fmt: skip
        try:
            wb = wandb.init(
                mode=mode,
                id=wid,
                resume="allow",
                project=project,
                entity=options.get("entity") or None,
                name=name if rank is None else f"{name}-rank{rank}",
                group=run["id"] if rank is not None else (run.get("experiment") or None),
                tags=tags,
                dir=str(work if mode == "offline" else base),
                config=dict(run.get("params") or {}),
                settings=settings,
                reinit="create_new",
            )
        except Exception as e:  # wandb raises its own errors, and pydantic's for bad settings
            raise ExportError(f"W&B ({mode}) would not start run {wid}: {e}") from e
        if first:
            report.keep("params", len(run.get("params") or {}))
        finished = False
        try:
            done = self._history(wb, rank, series, report, progress, done, total, list(files.images(report)))
            files.log(wb, report)
            status = str(run.get("status") or "")
            started, ended = start_time(run), run.get("ended_at")
            wb.summary.update(
                {
                    "aquarium": {
                        "run_id": run["id"],
                        "rank": rank,
                        "status": status,
                        "started_at": started,
                        "ended_at": ended,
                    }
                }  # fmt: skip
            )
            if first:
                self._notes(report, status, started, ended)
            exit_code = EXIT_CODES.get(status, 0)
            wb.finish(exit_code=exit_code)
            finished = True
        finally:
            if not finished:
                wb.finish(exit_code=1, quiet=True)
                shutil.rmtree(work, ignore_errors=True)
        if mode == "online":
            return str(wb.url), done
        return str(_replace(Path(wb.dir).parent, base / "wandb", wid)), done

    def _history(
        self,
        wb: Any,
        rank: int | None,
        series: list[Series],
        report: Report,
        progress: Progress,
        done: int,
        total: int,
        images: Sequence[tuple[int, str, Any]] = (),
    ) -> int:
        """Every point, one ``run.log`` per step with all the step's metrics, in step order; the
        sorting, checks and per-step times in numpy, only the rows themselves in Python."""
        import numpy as np

        waiting = list(images)  # (step, key, wandb.Image) by step: merged into the rows in step order

        def images_up_to(step: float, row: dict[str, Any] | None = None) -> None:
            """Log the images before ``step`` in rows of their own; those at ``step`` go into ``row``."""
            while waiting and waiting[0][0] <= step:
                at = waiting[0][0]
                own: dict[str, Any] = {}
                while waiting and waiting[0][0] == at:
                    _, key, image = waiting.pop(0)
                    own[wandb_key(key)] = image
                if row is not None and at == step:
                    row.update(own)
                else:
                    wb.log(own, step=at, commit=True)

        if not series:
            images_up_to(math.inf)
            return done
        names = []
        for s in series:
            key = s.key if rank is not None else rank_key(s.key, s.rank)
            fixed = wandb_key(key)
            if fixed != key:
                report.note("points", "renamed", "W&B keeps _step/_runtime/_timestamp/_wandb: prefixed aquarium/",
                            len(s.steps), example=f"{key} -> {fixed}")  # fmt: skip
            if rank is None and s.rank:
                report.note("points", "rank", "rank k>0 logged as <key>/rank<k> in the same W&B run", len(s.steps))
            elif rank:
                report.note("points", "rank", "rank k>0 logged in its own W&B run <id>-rank<k>", len(s.steps))
            names.append(fixed)
        steps = np.concatenate([s.steps for s in series]).astype(np.int64)
        which = np.concatenate([np.full(len(s.steps), i, dtype=np.int64) for i, s in enumerate(series)])
        values = np.concatenate([s.values for s in series]).astype(np.float64)
        times = np.concatenate([s.times for s in series]).astype(np.float64)
        order = np.lexsort((which, steps))  # by step, then series; stable, so a series' last value comes last
        steps, which, values, times = steps[order], which[order], values[order], times[order]
        keep = steps >= 0
        if not keep.all():
            first = int(steps[~keep][0])
            report.note("points", "negative step", "W&B steps start at 0: not logged", int((~keep).sum()),
                        kept=False, example=f"step {first}")  # fmt: skip
        twice = np.zeros(len(steps), dtype=bool)
        twice[:-1] = (steps[1:] == steps[:-1]) & (which[1:] == which[:-1])
        twice &= keep
        if twice.any():
            i = int(np.flatnonzero(twice)[0])
            report.note("points", "same step", "W&B holds one value per key and step: the last one stays",
                        int(twice.sum()), kept=False, example=f"{names[int(which[i])]}@{int(steps[i])}")  # fmt: skip
        done += int((~keep | twice).sum())
        keep &= ~twice
        steps, which, values, times = steps[keep], which[keep], values[keep], times[keep]
        report.note("points", "NaN", "stored by W&B as NaN (charts skip it)", int(np.isnan(values).sum()))
        report.note("points", "Inf", "stored by W&B as +/-Infinity (charts skip it)", int(np.isinf(values).sum()))
        if not len(steps):
            images_up_to(math.inf)
            return done
        starts = np.concatenate([[0], np.flatnonzero(np.diff(steps)) + 1])
        latest = np.fmax.reduceat(times, starts).tolist()  # NaN only where every time of the step is
        ends = [*starts[1:].tolist(), len(steps)]
        point_names = [names[i] for i in which.tolist()]
        value_list, step_list = values.tolist(), steps.tolist()
        logged = 0
        for a, b, at in zip(starts.tolist(), ends, latest):
            row: dict[str, Any] = dict(zip(point_names[a:b], value_list[a:b]))
            if at == at:
                row["_timestamp"] = at
            images_up_to(step_list[a], row)
            wb.log(row, step=step_list[a], commit=True)
            logged += b - a
            if logged % 20_000 < b - a:
                progress(done + logged, total, "history")
        images_up_to(math.inf)
        report.keep("points", logged)
        if len(starts) < len(steps):
            report.note("points", "one row per step", "points of one step share one W&B row and its _timestamp",
                        len(steps) - len(starts))  # fmt: skip
        return done + logged

    @staticmethod
    def _notes(report: Report, status: str, started: float | None, ended: Any) -> None:
        report.keep("status")
        report.note("status", "exit code", 'as the W&B exit code (0 finished, else failed); the original in '
                    'summary["aquarium"]["status"]', example=f"{status} -> {EXIT_CODES.get(status, 0)}")  # fmt: skip
        if status == "running":
            report.note("status", "running", "a W&B offline run ends when written: marked finished")
        kept_times = (started is not None) + (ended is not None)
        report.keep("times", kept_times)
        report.note("times", "summary", 'W&B sets its own start time and runtime: Aquarium\'s in summary["aquarium"]',
                    kept_times)  # fmt: skip
