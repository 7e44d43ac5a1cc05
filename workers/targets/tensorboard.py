"""TensorBoard: event files written with tensorboard's own writer (no TensorFlow needed).

One directory per run, ``<log_dir>/<experiment>/<run name or id>``. A re-export replaces that
directory: the files are written into a temporary sibling, which is then swapped in, so a
directory never holds two exports. Scalars keep their steps and wall times; values become
float32 (``simple_value``, what TensorBoard's scalars read). Params go through the HParams plugin;
tags, status and end time, which TensorBoard has no place for, become ``tags.<name>`` and
``aquarium.*`` hparams.

Artifacts: raster images (PNG, JPEG, GIF) become image summaries (``Summary.Image`` with the
file's own bytes) at their step under their name; text files (``text/*``, up to 1 MiB, UTF-8)
text summaries under their name; TensorBoard holds no other files, so the rest are listed in the
text summary ``aquarium/artifacts`` (name, kind, size, sha256) and reported as not kept.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..progress import Progress
from ..report import Report
from .artifacts import Planned, fetched, plan
from .base import ExportError, iter_series, rank_key, required, start_time, total_points

if TYPE_CHECKING:
    from aquarium.collector import Api

RUN_MARKER = "aquarium-run-id"  # file holding the run id, so two runs never share a directory
FLOAT32_MAX = 3.4028234663852886e38
_UNSAFE = re.compile(r"[^\w.\-]")


def _safe(name: str) -> str:
    return _UNSAFE.sub("_", name).strip(".") or "_"


def run_dir(log_dir: Path, run: Mapping[str, Any]) -> Path:
    parent = log_dir / _safe(run.get("experiment") or "aquarium")
    wanted = parent / _safe(run.get("name") or run["id"])
    marker = wanted / RUN_MARKER
    if marker.exists() and marker.read_text().strip() != run["id"]:
        return parent / _safe(f"{run.get('name')}-{run['id']}")  # another run has this name
    return wanted


def _hparam(value: Any) -> bool | float | str:
    if isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return float(value)
    return json.dumps(value)


class TensorBoardTarget:
    name = "tensorboard"

    def export(self, api: Api, run_id: str, options: Mapping[str, Any], progress: Progress) -> Report:
        log_dir = Path(str(required(options, "log_dir", self.name)))
        run = api.run(run_id)
        report = Report(self.name, run_id)
        final = run_dir(log_dir, run)
        report.destination = str(final)
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            work = final.parent / f".{final.name}.tmp-{uuid.uuid4().hex[:8]}"
            work.mkdir()
        except OSError as e:
            raise ExportError(f"cannot write under {log_dir}: {e}", permanent=True) from e
        try:
            self._write(api, run, work, report, progress)
            (work / RUN_MARKER).write_text(run["id"])
            old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
            if final.exists():
                os.rename(final, old)
            os.rename(work, final)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return report

    def _write(self, api: Api, run: dict[str, Any], work: Path, report: Report, progress: Progress) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.hparams import summary_v2 as hp
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        writer = EventFileWriter(str(work), max_queue_size=1000, flush_secs=3600)
        started = start_time(run)
        try:
            hparams: dict[str, bool | float | str] = {}
            for key, value in (run.get("params") or {}).items():
                hparams[key] = _hparam(value)
                if isinstance(value, (list, dict)) or value is None:
                    report.note("params", "json", "lists, dicts and null as JSON text hparams", example=key)
                report.keep("params")
            for key, value in (run.get("tags") or {}).items():
                hparams[f"tags.{key}"] = _hparam(value)
                report.keep("tags")
            if run.get("tags"):
                report.note("tags", "as hparams", "TensorBoard has no run tags: hparams tags.<name>", len(run["tags"]))
            hparams["aquarium.run_id"] = run["id"]
            hparams["aquarium.status"] = str(run.get("status"))
            report.keep("status")
            report.note("status", "as hparam", "TensorBoard has no run status: hparam aquarium.status")
            if run.get("ended_at"):
                hparams["aquarium.ended_at"] = float(run["ended_at"])
                report.keep("times")
                report.note("times", "as hparam", "end time as hparam aquarium.ended_at (unix seconds)")
            if started is not None:
                report.keep("times")
            summary = hp.hparams_pb(hparams, start_time_secs=int(started or 0))
            writer.add_event(Event(wall_time=started or 0.0, summary=summary))

            total, done = total_points(run), 0
            progress(0, total, "scalars")
            for series in iter_series(api, run):
                tag = rank_key(series.key, series.rank)
                if series.rank:
                    report.note("points", "rank", "rank k>0 written as scalar <key>/rank<k>", len(series.steps))
                for step, value, at in zip(series.steps.tolist(), series.values.tolist(), series.times.tolist()):
                    if math.isnan(value):
                        report.note("points", "NaN", "kept as float32 NaN")
                    elif math.isinf(value):
                        report.note("points", "Inf", "kept as float32 +/-Inf")
                    elif abs(value) > FLOAT32_MAX:
                        report.note("points", "overflow", "beyond float32: became +/-Inf", example=f"{tag}@{step}")
                    value_pb = Summary.Value(tag=tag, simple_value=value)
                    writer.add_event(Event(wall_time=at, step=step, summary=Summary(value=[value_pb])))
                    done += 1
                    if done % 10_000 == 0:
                        progress(done, total, "scalars")
                report.keep("points", len(series.steps))
            if done:
                report.note("points", "float32", "values stored as float32 (TensorBoard simple_value)", done)
            progress(done, total, "scalars")
            self._artifacts(api, run, writer, work, report)
        finally:
            writer.close()

    @staticmethod
    def _artifacts(api: Api, run: dict[str, Any], writer: Any, work: Path, report: Report) -> None:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.compat.proto.summary_pb2 import Summary
        from tensorboard.plugins.text.summary_v2 import text_pb

        listed: list[tuple[Planned, str]] = []
        for artifact in plan(api, run["id"], report):
            wall, step = artifact.logged_at, artifact.step if artifact.step is not None else 0
            if not (artifact.raster or artifact.text):
                listed.append((artifact, "not kept: TensorBoard holds no files"))
                report.note("artifacts", "no files", "TensorBoard holds images and text only: listed in the text "
                            "summary aquarium/artifacts", kept=False, example=artifact.name)  # fmt: skip
                continue
            with fetched(api, run["id"], artifact, work) as path:
                data = path.read_bytes()  # an image or a small text: a summary holds it whole anyway
            if artifact.raster:
                width, height, channels = _image_size(data)
                image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=data)
                summary = Summary(value=[Summary.Value(tag=artifact.name, image=image)])
                report.note("artifacts", "image", "raster images as image summaries at their step",
                            example=artifact.name)  # fmt: skip
                listed.append((artifact, "image summary"))
            else:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    listed.append((artifact, "not kept: not UTF-8 text"))
                    report.note("artifacts", "not UTF-8", "text files that are not UTF-8: listed, not kept",
                                kept=False, example=artifact.name)  # fmt: skip
                    continue
                summary = text_pb(artifact.name, text)
                report.note("artifacts", "text", "text files (text/*, up to 1 MiB) as text summaries",
                            example=artifact.name)  # fmt: skip
                listed.append((artifact, "text summary"))
            if artifact.step is None:
                report.note("artifacts", "no step", "logged without a step: at step 0", example=artifact.name)
            writer.add_event(Event(wall_time=wall, step=step, summary=summary))
            report.keep("artifacts")
        if listed:
            rows = ["| name | kind | size | sha256 | in TensorBoard |", "|---|---|---|---|---|"]
            rows += [f"| {a.name} | {a.kind} | {a.size} | {a.sha256} | {how} |" for a, how in listed]
            started = start_time(run) or 0.0
            writer.add_event(Event(wall_time=started, step=0, summary=text_pb("aquarium/artifacts", "\n".join(rows))))


def _image_size(data: bytes) -> tuple[int, int, int]:
    """(width, height, channels) of an encoded image; zeros when Pillow cannot read it."""
    import io

    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            return image.width, image.height, len(image.getbands())
    except (UnidentifiedImageError, OSError):
        return 0, 0, 0
