"""The seed's file-based tracker: ``<name>_<id>/`` dirs of JSON files (``metadata.json``,
``hyperparameters.json``, ``metrics.json``, ``artifacts.json``, ``summary.json``) with
``artifacts/``, ``plots/`` and ``versions/`` beside them, as its ``ExperimentTracker`` wrote them.

- ``metadata.json``: ``{"start_time": iso, "status": ..., "end_time": iso}``, local time (the
  seed used ``datetime.now().isoformat()``); ``metrics.json``: one entry per ``log_metrics``
  call, ``{"timestamp": unix seconds, "step": int, <metric>: value, ...}``.
- A location is a base dir holding many run dirs, or one run dir. A dir is a run when it holds
  any of the seed's files; one without ``metadata.json`` or with a file that is not JSON fails
  with an error naming the file.
- The Aquarium run remembers the seed's id and name (``meta.import``), so exporting it back to
  the seed format writes the same ``<name>_<id>`` dir.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ..progress import Progress
from ..report import Report, Tally
from .base import ImportedRun, ImportedSeries, SourceError

FILES = ("metadata.json", "hyperparameters.json", "metrics.json", "artifacts.json", "summary.json")
DIRS = ("artifacts", "plots", "versions")
ENTRY_KEYS = ("timestamp", "step")


def to_iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds).isoformat()


def from_iso(text: Any, path: Path, key: str) -> float:
    try:
        return datetime.fromisoformat(str(text)).timestamp()
    except ValueError as e:
        raise SourceError(f"{path}: {key} {text!r} is not an ISO date") from e


def split_dir_name(name: str) -> tuple[str, str]:
    """``<name>_<id>`` as the seed's ExperimentManager reads it (the id follows the last ``_``)."""
    base, sep, run_id = name.rpartition("_")
    return (base, run_id) if sep and base and run_id else (name, "")


def is_run_dir(path: Path) -> bool:
    return path.is_dir() and any((path / f).is_file() for f in FILES)


def _load(path: Path, required: bool, default: Any) -> Any:
    if not path.is_file():
        if required:
            raise SourceError(f"{path} is missing: not a seed experiment dir")
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise SourceError(f"{path} is not readable JSON: {e}") from e


class SeedSource:
    name = "seed"

    def list_runs(self, location: str, options: Mapping[str, Any]) -> list[str]:
        root = Path(location)
        if not root.is_dir():
            raise SourceError(f"{root} is not a directory")
        if is_run_dir(root):
            return [str(root.resolve())]
        runs = sorted(str(p.resolve()) for p in root.iterdir() if is_run_dir(p))
        if not runs:
            raise SourceError(f"no seed experiment dirs (<name>_<id>/ with metadata.json) in {root}")
        return runs

    def read_run(
        self, location: str, ref: str, options: Mapping[str, Any], report: Report, progress: Progress
    ) -> ImportedRun:
        path = Path(ref)
        metadata = _load(path / "metadata.json", True, {})
        params = _load(path / "hyperparameters.json", False, {})
        entries = _load(path / "metrics.json", False, [])
        artifacts = _load(path / "artifacts.json", False, {})
        for name, value, kind in (("metadata.json", metadata, dict), ("hyperparameters.json", params, dict),
                                  ("metrics.json", entries, list), ("artifacts.json", artifacts, dict)):  # fmt: skip
            if not isinstance(value, kind):
                raise SourceError(f"{path / name} holds a {type(value).__name__}, not a {kind.__name__}")
        experiment_name, seed_id = split_dir_name(path.name)
        run = ImportedRun(
            self.name,
            path.name,
            str(path),
            name=experiment_name,
            experiment=experiment_name,
            params=params,
            status=str(metadata["status"]) if "status" in metadata else None,
            origin={"seed_id": seed_id, "seed_name": experiment_name},
        )
        if "start_time" in metadata:
            run.started_at = from_iso(metadata["start_time"], path / "metadata.json", "start_time")
        if "end_time" in metadata and metadata["end_time"]:
            run.ended_at = from_iso(metadata["end_time"], path / "metadata.json", "end_time")
        for key in sorted(set(metadata) - {"start_time", "end_time", "status"}):
            report.note("status", "metadata", "metadata.json keys Aquarium has no place for", kept=False, example=key)
        run.series = self._series(path / "metrics.json", entries, report)
        progress(1, 1, "read")
        self._artifacts(path, artifacts, report)
        return run

    @staticmethod
    def _series(path: Path, entries: list[Any], report: Report) -> list[ImportedSeries]:
        series: dict[str, ImportedSeries] = {}
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                raise SourceError(f"{path}: entry {i} is a {type(entry).__name__}, not an object")
            step, at = entry.get("step", i), entry.get("timestamp")
            if type(step) is not int:
                if isinstance(step, float) and step.is_integer():
                    step = int(step)
                else:
                    raise SourceError(f"{path}: entry {i} has step {step!r}, not an integer")
            when = float(at) if isinstance(at, (int, float)) and not isinstance(at, bool) else math.nan
            for key, value in entry.items():
                if key in ENTRY_KEYS:
                    continue
                if isinstance(value, bool) or not isinstance(value, (int, float)):
                    report.note("points", "not a number", "metric values that are not numbers are not kept",
                                kept=False, example=f"{key}@{step}: {value!r}"[:120])  # fmt: skip
                    continue
                s = series.setdefault(key, ImportedSeries(key))
                s.steps.append(step)
                s.values.append(float(value))
                s.times.append(when)
        return list(series.values())

    @staticmethod
    def _artifacts(path: Path, artifacts: dict[str, Any], report: Report) -> None:
        files = [p for d in DIRS if (path / d).is_dir() for p in sorted((path / d).rglob("*")) if p.is_file()]
        count = max(len(files), len(artifacts))
        if count:
            report.fields.setdefault("artifacts", Tally())
            report.note("artifacts", "not imported", "artifact files and their records are not imported yet",
                        count, kept=False, example=", ".join(sorted(artifacts))[:120] or None)  # fmt: skip
