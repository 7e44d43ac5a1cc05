"""TensorBoard event dirs, read with TensorBoard's own ``EventAccumulator`` (no TensorFlow).

- A run is a directory holding ``*tfevents*`` files; its name is the directory's, its
  experiment the parent directory's (``<log_dir>/<experiment>/<run>``, as the tensorboard
  export writes). The run id comes from the directory's absolute path.
- Scalars (``simple_value``, and tensors of the scalars plugin) keep steps and wall times; values
  are float32 in TensorBoard, exact as float64. Orphaned events (steps going back after a
  restart) are kept, not purged.
- Hyperparameters come from the HParams plugin; the ``tags.<name>`` and ``aquarium.*`` hparams
  an Aquarium export writes become tags, status and end time again. Without them the status is
  ``completed``, ended at the last event. Images, histograms, audio, text and graphs are reported
  as not imported.
- Every event file is checked record by record with TensorBoard's reader first, because the
  loader stops silently at a corrupt record: a corrupt or truncated file fails the run, naming it.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..progress import Progress
from ..report import Report
from .base import ImportedRun, ImportedSeries, SourceError

EVENT_FILE_MARK = "tfevents"
SESSION_STATUS = {1: "running", 2: "completed", 3: "failed", 4: "killed"}  # api_pb2.Status
NOT_IMPORTED = ("images", "audio", "histograms")


def event_files(directory: Path) -> list[Path]:
    return sorted(p for p in directory.iterdir() if p.is_file() and EVENT_FILE_MARK in p.name)


def check_records(path: Path) -> int:
    """How many records ``path`` holds; SourceError naming the file if one is corrupt or cut off."""
    from tensorboard.compat.tensorflow_stub import errors, pywrap_tensorflow

    try:
        reader = pywrap_tensorflow.PyRecordReader_New(str(path).encode(), 0, b"", None)
    except (errors.OpError, OSError) as e:
        raise SourceError(f"{path}: cannot open the event file ({e})") from e
    count = 0
    try:
        while True:
            try:
                reader.GetNext()
            except errors.OutOfRangeError:
                return count
            except errors.DataLossError as e:
                raise SourceError(f"{path}: corrupt event file after {count} records ({e.message})") from e
            count += 1
    finally:
        reader.file_handle.close()


def _hparam(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    if kind == "number_value":
        number = float(value.number_value)
        return int(number) if number.is_integer() and abs(number) < 2**53 else number
    if kind == "string_value":
        return str(value.string_value)
    if kind == "bool_value":
        return bool(value.bool_value)
    return None


class TensorBoardSource:
    name = "tensorboard"

    def list_runs(self, location: str, options: Mapping[str, Any]) -> list[str]:
        root = Path(location)
        if not root.exists():
            raise SourceError(f"{root} does not exist")
        if root.is_file():
            raise SourceError(f"{root} is a file: give the directory holding the event files")
        runs = []
        for directory, subdirs, files in os.walk(root):
            subdirs.sort()
            if any(EVENT_FILE_MARK in f for f in files):
                runs.append(str(Path(directory).resolve()))
        if not runs:
            raise SourceError(f"no TensorBoard event files (*tfevents*) under {root}")
        return runs

    def read_run(
        self, location: str, ref: str, options: Mapping[str, Any], report: Report, progress: Progress
    ) -> ImportedRun:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        directory = Path(ref)
        if not directory.is_dir():
            raise SourceError(f"{directory} is not a directory")
        files = event_files(directory)
        if not files:
            raise SourceError(f"no TensorBoard event files in {directory}")
        records = sum(check_records(path) for path in files)
        progress(0, records, "reading")
        sizes = {"scalars": 0, "tensors": 0, "images": 1, "audio": 1, "histograms": 1, "compressedHistograms": 1}
        acc = EventAccumulator(str(directory), size_guidance=sizes, purge_orphaned_data=False)
        try:
            acc.Reload()
        except Exception as e:  # protobuf's DecodeError and friends: a record that is not an Event
            raise SourceError(f"{directory}: unreadable events ({type(e).__name__}: {e})") from e
        run = ImportedRun(self.name, str(directory.resolve()), str(directory), name=directory.name,
                          experiment=directory.parent.name or None)  # fmt: skip
        tags = acc.Tags()
        for tag in tags["scalars"]:
            events = acc.Scalars(tag)
            run.series.append(ImportedSeries(tag, [e.step for e in events], [e.value for e in events],
                                             [e.wall_time for e in events]))  # fmt: skip
        for tag in tags["tensors"]:
            plugin = acc.SummaryMetadata(tag).plugin_data.plugin_name
            if plugin == "scalars":
                run.series.append(self._tensor_series(acc, tag))
            elif plugin != "hparams":  # hparams are read below
                report.note("points", "not imported", "TensorBoard summaries other than scalars are not imported",
                            len(acc.Tensors(tag)), kept=False, example=f"{tag} ({plugin or 'tensor'})")  # fmt: skip
        for kind in NOT_IMPORTED:
            for tag in tags[kind]:
                report.note("points", "not imported", "TensorBoard summaries other than scalars are not imported",
                            kept=False, example=f"{tag} ({kind})")  # fmt: skip
        progress(records, records, "reading")
        self._hparams(acc, run, report)
        return run

    @staticmethod
    def _tensor_series(acc: Any, tag: str) -> ImportedSeries:
        from tensorboard.util import tensor_util

        events = acc.Tensors(tag)
        values = [float(tensor_util.make_ndarray(e.tensor_proto).item()) for e in events]
        return ImportedSeries(tag, [e.step for e in events], values, [e.wall_time for e in events])

    @staticmethod
    def _hparams(acc: Any, run: ImportedRun, report: Report) -> None:
        from tensorboard.plugins.hparams import plugin_data_pb2

        try:
            content = acc.PluginTagToContent("hparams")
        except KeyError:  # no HParams summaries in this run
            content = {}
        times = [t for s in run.series for t in s.times if not math.isnan(t)]
        start = min(times, default=None)
        status, end = "completed", max(times, default=None)
        own_status = False  # an Aquarium export's aquarium.status hparam beats session_end_info
        start_info = content.get("_hparams_/session_start_info")
        if start_info is not None:
            info = plugin_data_pb2.HParamsPluginData.FromString(start_info).session_start_info
            if info.start_time_secs:
                start = float(info.start_time_secs)
                report.note("times", "whole seconds", "start time from HParams session_start_info (whole seconds)")
            for key in sorted(info.hparams):
                value = _hparam(info.hparams[key])
                if key.startswith("tags."):
                    run.tags[key[len("tags.") :]] = value if isinstance(value, str) else str(value)
                elif key == "aquarium.status" and isinstance(value, str):
                    status, own_status = value, True
                elif key == "aquarium.ended_at" and isinstance(value, (int, float)):
                    end = float(value)
                elif key == "aquarium.run_id":
                    run.origin["aquarium_run_id"] = value
                else:
                    run.params[key] = value
        end_info = content.get("_hparams_/session_end_info")
        if end_info is not None and start_info is not None and not own_status:
            info_end = plugin_data_pb2.HParamsPluginData.FromString(end_info).session_end_info
            status = SESSION_STATUS.get(info_end.status, status)
            if info_end.end_time_secs:
                end = float(info_end.end_time_secs)
        elif start_info is None:
            report.note("status", "none in TensorBoard", "TensorBoard has no run status: completed, ended at the "
                        "last event")  # fmt: skip
        run.status, run.started_at, run.ended_at = status, start, end
