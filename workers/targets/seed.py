"""The seed's directory format: one ``<name>_<id>/`` per run, as its file-based tracker wrote it.

``metadata.json``, ``hyperparameters.json``, ``metrics.json`` (one entry per step and wall time,
the points of every key logged together in one entry, as one ``log_metrics`` call wrote them),
``artifacts.json``, ``summary.json`` (latest and best, computed as the seed computed them), and
the empty ``artifacts/``, ``plots/`` and ``versions/`` dirs. A run imported from a seed dir keeps
the seed's name and id, so seed dir -> Aquarium -> seed dir gives the same dir back. Times are
local ISO dates, as the seed's ``datetime.now().isoformat()``. A re-export replaces the dir.

Artifacts: each stored one copied to ``artifacts/<name>`` (figures to ``plots/<name>``, as the
seed's ``log_figure`` saved them) and listed in ``artifacts.json`` as the seed listed them (name ->
path, type, size, timestamp, framework for models), with Aquarium's sha256, step, rank and media
type beside; ``summary.json`` lists their names.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..progress import Progress
from ..report import Report
from ..sources.seed import DIRS, ENTRY_KEYS, to_iso
from .artifacts import Planned, fetched, plan
from .base import ExportError, iter_series, rank_key, required, total_points

if TYPE_CHECKING:
    from aquarium.collector import Api


SEED_TYPES = {  # the seed's _get_artifact_type, by extension, for files logged with log_artifact
    **dict.fromkeys((".h5", ".pt", ".pth", ".onnx", ".pb", ".tflite"), "model"),
    **dict.fromkeys((".png", ".jpg", ".jpeg", ".svg", ".gif"), "image"),
    **dict.fromkeys((".csv", ".tsv"), "table"),
    **dict.fromkeys((".json", ".yaml", ".yml"), "config"),
    **dict.fromkeys((".txt", ".log", ".md"), "text"),
}


def seed_type(artifact: Planned) -> str:
    if artifact.kind in ("model", "figure"):
        return artifact.kind
    return SEED_TYPES.get(os.path.splitext(artifact.name)[1].lower(), "other")


def _safe(text: str) -> str:
    return text.replace("/", "_").replace("\0", "_").strip() or "_"


def seed_identity(run: Mapping[str, Any], report: Report) -> tuple[str, str]:
    """(experiment name, experiment id) of the seed dir: the seed's own for a run imported from one."""
    origin = (run.get("meta") or {}).get("import") or {}
    if isinstance(origin, dict) and origin.get("source") == "seed" and origin.get("seed_id"):
        return str(origin.get("seed_name") or run.get("name") or run["id"]), str(origin["seed_id"])
    name, run_id = str(run.get("name") or run["id"]), str(run["id"])
    if "_" in run_id:
        report.note("status", "id", "the seed reads the id after the last '_': '_' in the run id became '-'",
                    example=run_id)  # fmt: skip
        run_id = run_id.replace("_", "-")
    return name, run_id


def summary_of(name: str, seed_id: str, metadata: dict[str, Any], params: dict[str, Any],
               entries: list[dict[str, Any]]) -> dict[str, Any]:  # fmt: skip
    """``summary.json`` as the seed's ``save_experiment_summary`` computed it."""
    latest = {k: v for entry in entries[-1:] for k, v in entry.items() if k not in ENTRY_KEYS}
    best: dict[str, Any] = {}
    for metric in {k for entry in entries for k in entry if k not in ENTRY_KEYS}:
        values = [(e.get(metric), e.get("step", i)) for i, e in enumerate(entries) if metric in e]
        value, step = max(values, key=lambda x: x[0] if x[0] is not None else float("-inf"))
        if value is not None:
            best[metric] = {"value": float(round(value, 10)), "step": step, "mode": "max"}
    return {"experiment_name": name, "experiment_id": seed_id, "metadata": metadata, "hyperparameters": params,
            "metrics": {"latest": latest, "best": best}, "artifacts": []}  # fmt: skip


class SeedTarget:
    name = "seed"

    def export(self, api: Api, run_id: str, options: Mapping[str, Any], progress: Progress) -> Report:
        out = Path(str(required(options, "out", self.name)))
        run = api.run(run_id)
        report = Report(self.name, run_id)
        name, seed_id = seed_identity(run, report)
        if _safe(name) != name:
            report.note("status", "name", "'/' in the name became '_' in the dir name", example=name)
        final = out / f"{_safe(name)}_{seed_id}"
        report.destination = str(final)
        try:
            out.mkdir(parents=True, exist_ok=True)
            work = out / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
            work.mkdir()
        except OSError as e:
            raise ExportError(f"cannot write under {out}: {e}", permanent=True) from e
        try:
            self._write(api, run, name, seed_id, work, final, report, progress)
            old = out / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            if final.exists():
                os.rename(final, old)
            os.rename(work, final)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as e:
            raise ExportError(f"cannot write {final}: {e}", permanent=True) from e
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return report

    def _write(self, api: Api, run: dict[str, Any], name: str, seed_id: str, work: Path, final: Path,
               report: Report, progress: Progress) -> None:  # fmt: skip
        started: float = run.get("started_at") or run["created_at"]
        metadata: dict[str, Any] = {"start_time": to_iso(float(started)), "status": run.get("status")}
        if not run.get("started_at"):
            report.note("times", "start", "no start time: when Aquarium first saw the run")
        report.keep("times")
        report.keep("status")
        if run.get("ended_at"):
            metadata["end_time"] = to_iso(float(run["ended_at"]))
            report.keep("times")
        params = dict(run.get("params") or {})
        report.keep("params", len(params))
        report.note("tags", "no tags", "the seed's format has no tags", len(run.get("tags") or {}), kept=False)
        entries = self._entries(api, run, report, progress)
        for directory in DIRS:
            (work / directory).mkdir()
        artifacts = self._artifacts(api, run, work, final, report)
        summary = summary_of(name, seed_id, metadata, params, entries)
        summary["artifacts"] = list(artifacts)
        documents: dict[str, Any] = {
            "metadata.json": metadata,
            "hyperparameters.json": params,
            "metrics.json": entries,
            "artifacts.json": artifacts,
            "summary.json": summary,
        }
        for file_name, document in documents.items():
            (work / file_name).write_text(json.dumps(document, indent=2), encoding="utf-8")

    @staticmethod
    def _artifacts(api: Api, run: dict[str, Any], work: Path, final: Path, report: Report) -> dict[str, Any]:
        """Copy every stored artifact into the dir; ``artifacts.json`` as the seed wrote it."""
        listed: dict[str, Any] = {}
        for artifact in plan(api, run["id"], report):
            where = Path("plots" if artifact.kind == "figure" else "artifacts", *artifact.name.split("/"))
            with fetched(api, run["id"], artifact, work) as path:
                (work / where).parent.mkdir(parents=True, exist_ok=True)
                os.replace(path, work / where)
            entry: dict[str, Any] = {"path": str(final / where), "type": seed_type(artifact), "size": artifact.size,
                                     "timestamp": artifact.logged_at}  # fmt: skip
            if artifact.kind == "model":
                entry["framework"] = artifact.framework or "unknown"
            entry |= {"sha256": artifact.sha256, "step": artifact.step, "rank": artifact.rank,
                      "media_type": artifact.media_type, "state": artifact.state}  # fmt: skip
            listed[artifact.name] = entry
            report.keep("artifacts")
        if listed:
            report.note("artifacts", "files", "copied to artifacts/<name>, figures to plots/<name>, listed in "
                        "artifacts.json", len(listed))  # fmt: skip
        return listed

    @staticmethod
    def _entries(api: Api, run: dict[str, Any], report: Report, progress: Progress) -> list[dict[str, Any]]:
        """One entry per (wall time, step), keys in the order they were read, entries in time order."""
        entries: dict[tuple[float, int], dict[str, Any]] = {}
        total, done = total_points(run), 0
        for series in iter_series(api, run):
            key = rank_key(series.key, series.rank)
            if series.rank:
                report.note("points", "rank", "rank k>0 written as metric <key>/rank<k>", len(series.steps))
            for step, value, at in zip(series.steps.tolist(), series.values.tolist(), series.times.tolist()):
                when = math.inf if math.isnan(at) else at
                entry = entries.setdefault((when, step), {"timestamp": None if math.isnan(at) else at, "step": step})
                entry[key] = value
            nan = int(sum(1 for v in series.values.tolist() if math.isnan(v)))
            inf = int(sum(1 for v in series.values.tolist() if math.isinf(v)))
            report.note("points", "NaN", "written as JSON NaN, as the seed's json.dump did", nan)
            report.note("points", "Inf", "written as JSON Infinity, as the seed's json.dump did", inf)
            report.keep("points", len(series.steps))
            done += len(series.steps)
            progress(done, total, "metrics")
        return [entries[k] for k in sorted(entries)]
