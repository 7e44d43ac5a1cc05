"""Files: one JSON document (the run and its series), or CSV, long or wide.

Written streamed, a few thousand points at a time, into a temporary file that replaces ``out``
when complete. Conventions: JSON has no NaN/Infinity, so those values are the strings ``"NaN"``,
``"Infinity"``, ``"-Infinity"``; CSV writes floats with ``repr`` (exact, and ``nan``/``inf``
parse back with ``float()``).

- long CSV: ``run,key,rank,step,value,time``, one row per point.
- wide CSV: one row per step, ``step`` then a column per series (``<key>`` for rank 0,
  ``<key>/rank<k>`` otherwise), an empty cell where a series has no point at that step.
- Artifacts: JSON lists every artifact record (``"artifacts"``: name, kind, rank, size, sha256,
  step, framework, media type, meta, state), metadata only; CSV holds series only. Neither holds
  the bytes, so both report artifacts as not kept.
"""

from __future__ import annotations

import csv
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from ..progress import Progress
from ..report import Report
from .base import ExportError, iter_series, rank_key, required, total_points

if TYPE_CHECKING:
    from aquarium.collector import Api

CHUNK = 5000


def _json_number(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def _open(out: Path) -> tuple[Path, IO[str]]:
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        part = out.with_name(f".{out.name}.part")
        return part, open(part, "w", newline="", encoding="utf-8")
    except OSError as e:
        raise ExportError(f"cannot write {out}: {e}", permanent=True) from e


class _FileTarget:
    name = ""
    suffix = ""

    def export(self, api: Api, run_id: str, options: Mapping[str, Any], progress: Progress) -> Report:
        out = Path(str(required(options, "out", self.name)))
        run = api.run(run_id)
        report = Report(self.name, run_id)
        report.destination = str(out)
        part, handle = _open(out)
        try:
            with handle:
                self._write(api, run, handle, report, progress, options)
            os.replace(part, out)
        finally:
            part.unlink(missing_ok=True)
        return report

    def _write(
        self,
        api: Api,
        run: dict[str, Any],
        handle: IO[str],
        report: Report,
        progress: Progress,
        options: Mapping[str, Any],
    ) -> None:
        raise NotImplementedError


class JsonTarget(_FileTarget):
    name = "json"

    def _write(
        self,
        api: Api,
        run: dict[str, Any],
        handle: IO[str],
        report: Report,
        progress: Progress,
        options: Mapping[str, Any],
    ) -> None:
        head = {k: v for k, v in run.items() if k != "metrics"}
        handle.write('{"run": ' + json.dumps(head, default=str, allow_nan=False) + ', "series": [')
        for name in ("params", "tags"):
            report.keep(name, len(run.get(name) or {}))
        report.keep("status")
        report.keep("times", sum(1 for k in ("created_at", "started_at", "ended_at") if run.get(k)))
        total, done = total_points(run), 0
        for i, series in enumerate(iter_series(api, run)):
            handle.write(", " if i else "")
            handle.write(json.dumps({"key": series.key, "rank": series.rank})[:-1] + ', "points": [')
            for start in range(0, len(series.steps), CHUNK):
                rows = zip(
                    series.steps[start : start + CHUNK].tolist(),
                    series.values[start : start + CHUNK].tolist(),
                    series.times[start : start + CHUNK].tolist(),
                )
                text = ", ".join(json.dumps([s, _json_number(v), t]) for s, v, t in rows)
                handle.write((", " if start else "") + text)
                done += min(CHUNK, len(series.steps) - start)
                progress(done, total, "points")
            handle.write("]}")
            _count_special(
                report, series.values.tolist(), ('as the string "NaN"', 'as the strings "Infinity", "-Infinity"')
            )
            report.keep("points", len(series.steps))
        artifacts = api.artifacts(run["id"])
        handle.write('], "point_columns": ["step", "value", "time"], "artifacts": ')
        handle.write(json.dumps(artifacts, default=str, allow_nan=False) + "}\n")
        report.note("artifacts", "metadata only", 'every artifact record in "artifacts"; the bytes are not in '
                    "the JSON (export seed, mlflow or wandb for the files)", len(artifacts), kept=False)  # fmt: skip


class CsvTarget(_FileTarget):
    name = "csv"

    def _write(
        self,
        api: Api,
        run: dict[str, Any],
        handle: IO[str],
        report: Report,
        progress: Progress,
        options: Mapping[str, Any],
    ) -> None:
        layout = options.get("layout", "long")
        if layout not in ("long", "wide"):
            raise ExportError(f"CSV layout must be long or wide, not {layout!r}", permanent=True)
        for name in ("params", "tags"):
            count = len(run.get(name) or {})
            report.note(name, "not in CSV", "CSV holds points only: export json for the run itself", count, kept=False)
        report.note("status", "not in CSV", "CSV holds points only: export json for the run itself", kept=False)
        report.note("artifacts", "not in CSV", "CSV holds series only: export seed, mlflow or wandb for the files",
                    len(api.artifacts(run["id"])), kept=False)  # fmt: skip
        writer = csv.writer(handle)
        total = total_points(run)
        if layout == "long":
            self._long(api, run, writer, report, progress, total)
        else:
            self._wide(api, run, writer, report, progress, total)

    @staticmethod
    def _long(api: Api, run: dict[str, Any], writer: Any, report: Report, progress: Progress, total: int) -> None:
        writer.writerow(["run", "key", "rank", "step", "value", "time"])
        done = 0
        for series in iter_series(api, run):
            for start in range(0, len(series.steps), CHUNK):
                rows = zip(
                    series.steps[start : start + CHUNK].tolist(),
                    series.values[start : start + CHUNK].tolist(),
                    series.times[start : start + CHUNK].tolist(),
                )
                writer.writerows([run["id"], series.key, series.rank, s, repr(v), repr(t)] for s, v, t in rows)
                done += min(CHUNK, len(series.steps) - start)
                progress(done, total, "points")
            _count_special(report, series.values.tolist(), ("as nan", "as inf, -inf"))
            report.keep("points", len(series.steps))
            report.keep("times", len(series.steps))

    @staticmethod
    def _wide(api: Api, run: dict[str, Any], writer: Any, report: Report, progress: Progress, total: int) -> None:
        import numpy as np

        columns = list(iter_series(api, run))  # aligning by step needs every series (as arrays, not text)
        steps = np.unique(np.concatenate([c.steps for c in columns])) if columns else np.array([], dtype=np.int64)
        where = []
        for c in columns:
            index = np.full(len(steps), -1, dtype=np.int64)
            index[np.searchsorted(steps, c.steps)] = np.arange(len(c.steps))  # a repeated step: the last wins
            where.append(index)
            repeated = len(c.steps) - len(np.unique(c.steps))
            report.note("points", "repeated step", "one cell per step: the last point of a repeated step kept",
                        repeated, kept=False, example=rank_key(c.key, c.rank))  # fmt: skip
            report.keep("points", len(c.steps) - repeated)
            _count_special(report, c.values.tolist(), ("as nan", "as inf, -inf"))
        count = sum(len(c.steps) for c in columns)
        report.note("times", "not in wide CSV", "one row per step has no point times: use the long layout", count,
                    kept=False)  # fmt: skip
        writer.writerow(["step", *(rank_key(c.key, c.rank) for c in columns)])
        values = [c.values.tolist() for c in columns]
        indexes = [w.tolist() for w in where]
        for start in range(0, len(steps), CHUNK):
            writer.writerows(_wide_rows(steps[start : start + CHUNK].tolist(), start, values, indexes))
            progress(min(total, round(total * (start + CHUNK) / max(len(steps), 1))), total, "rows")


def _wide_rows(
    steps: list[int], offset: int, values: list[list[float]], indexes: list[list[int]]
) -> Iterable[list[Any]]:
    for i, step in enumerate(steps):
        row: list[Any] = [step]
        for column, index in zip(values, indexes):
            at = index[offset + i]
            row.append(repr(column[at]) if at >= 0 else "")
        yield row


def _count_special(report: Report, values: list[float], how: tuple[str, str]) -> None:
    nan = sum(1 for v in values if math.isnan(v))
    inf = sum(1 for v in values if math.isinf(v))
    report.note("points", "NaN", how[0], nan)
    report.note("points", "Inf", how[1], inf)
