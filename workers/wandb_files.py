"""Reading W&B offline run directories (``offline-run-<time>-<id>/run-<id>.wandb``) back.

A ``.wandb`` file is a LevelDB-style log (W&B's own format): a 7-byte header (``:W&B``, magic
0xBEE1, version), then 32 KiB blocks of chunks ``crc32 (4) | length (2) | type (1) | data``
(type FULL, or FIRST/MIDDLE.../LAST for a record split across chunks), each record a
``wandb.proto.wandb_internal_pb2.Record``. wandb 0.31 no longer ships a Python reader (its Go
core reads them), so this one decodes the chunks and leaves every record to wandb's protobuf.

``read_run(path)`` gives the run's config, history rows with their steps, summary, tags, times,
exit code, the artifacts it logged (name, type, metadata, each file's name, size and local path)
and the files it saved under ``files/``; a torn tail (a run that crashed while writing) ends the read with
``complete=False``; a bad header or checksum raises ``WandbFileError`` naming the file.
"""

from __future__ import annotations

import json
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HEADER = b":W&B" + struct.pack("<H", 0xBEE1)
HEADER_LEN = 7
BLOCK = 32768
CHUNK_HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4
INTERNAL_KEYS = ("_step", "_runtime", "_timestamp")


class WandbFileError(ValueError):
    """A file that is not a readable W&B run log; the message names the file and the offset."""


@dataclass
class HistoryRow:
    """One ``run.log(..., step=step)``: the user's values (``_step``/``_runtime``/``_timestamp`` apart)."""

    step: int
    values: dict[str, Any]
    timestamp: float | None = None
    runtime: float | None = None


@dataclass
class ArtifactFile:
    """One file of a logged artifact: its name in the artifact and where its bytes wait for sync."""

    name: str
    size: int
    local_path: str
    digest: str  # W&B's: base64 MD5


@dataclass
class LoggedArtifact:
    """One ``run.log_artifact``: the artifact's name, type, metadata and manifest."""

    name: str
    type: str
    metadata: dict[str, Any]
    files: list[ArtifactFile]


@dataclass
class OfflineRun:
    """What one offline run directory holds."""

    path: Path
    run_id: str = ""
    project: str = ""
    entity: str = ""
    name: str = ""
    group: str = ""
    notes: str = ""
    tags: list[str] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[HistoryRow] = field(default_factory=list)
    summary: dict[str, Any] = field(default_factory=dict)
    start_time: float | None = None
    runtime: float | None = None
    exit_code: int | None = None
    artifacts: list[LoggedArtifact] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # saved under the run dir's files/, for sync
    complete: bool = True  # False: the file ended inside a record (the run crashed while writing)

    @property
    def finished(self) -> bool:
        return self.exit_code is not None


def records(path: Path) -> Iterator[Any]:
    """Every ``Record`` of one ``.wandb`` file, in order; a torn last record (a crash while
    writing) ends the iteration quietly (``read_run`` reports it as ``complete=False``)."""
    yield from _records(path, torn=[])


def _records(path: Path, torn: list[bool]) -> Iterator[Any]:
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    if len(data) < HEADER_LEN or data[:6] != HEADER:
        raise WandbFileError(f"{path}: not a W&B run log (no :W&B header)")
    pos, parts, kind = HEADER_LEN, bytearray(), FULL
    while pos < len(data):
        left = BLOCK - pos % BLOCK
        if left < CHUNK_HEADER:  # the block's zero-filled trailer
            pos += left
            continue
        if pos + CHUNK_HEADER > len(data):
            torn.append(True)
            return
        checksum, length, kind = struct.unpack_from("<IHB", data, pos)
        if kind == 0 and length == 0 and checksum == 0:  # zero padding at the end of a block
            pos += left
            continue
        chunk = data[pos + CHUNK_HEADER : pos + CHUNK_HEADER + length]
        if len(chunk) < length:
            torn.append(True)
            return
        if zlib.crc32(bytes([kind]) + chunk) != checksum:
            raise WandbFileError(f"{path}: bad checksum at byte {pos}")
        pos += CHUNK_HEADER + length
        if kind in (FULL, FIRST):
            parts = bytearray(chunk)
        elif kind in (MIDDLE, LAST):
            parts += chunk
        else:
            raise WandbFileError(f"{path}: unknown chunk type {kind} at byte {pos}")
        if kind in (FULL, LAST):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(bytes(parts))
            yield record
    if parts and kind in (FIRST, MIDDLE):
        torn.append(True)


def run_file(run_dir: Path) -> Path:
    """The ``run-<id>.wandb`` of an offline run directory (or the file itself)."""
    if run_dir.is_file():
        return run_dir
    found = sorted(run_dir.glob("*.wandb"))
    if not found:
        raise WandbFileError(f"{run_dir}: no .wandb file (not a W&B run directory)")
    return found[0]


def run_dirs(root: Path) -> list[Path]:
    """The run directories under ``root`` (a ``wandb/`` dir, its parent, or one run dir), by name."""
    root = Path(root)
    if root.is_file() or any(root.glob("*.wandb")):
        return [root]
    for base in (root, root / "wandb"):
        found = sorted(p for p in base.glob("*run-*") if p.is_dir() and any(p.glob("*.wandb")))
        if found:
            return found
    return []


def _key(item: Any) -> str:
    return str(item.key) if item.key else "/".join(item.nested_key)


def _set(target: dict[str, Any], item: Any) -> None:
    value = json.loads(item.value_json)
    if item.key or len(item.nested_key) == 1:
        target[_key(item)] = value
        return
    node = target
    for part in item.nested_key[:-1]:
        child = node.get(part)
        node = node.setdefault(part, {}) if isinstance(child, dict) or child is None else {}
    node[item.nested_key[-1]] = value


def _remove(target: dict[str, Any], item: Any) -> None:
    target.pop(_key(item), None)


def read_run(run_dir: Path) -> OfflineRun:
    """An offline run directory (or its ``.wandb`` file) as config, history, summary, tags."""
    path = run_file(Path(run_dir))
    run = OfflineRun(path=path.parent)
    torn: list[bool] = []
    for record in _records(path, torn):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            r = record.run
            run.run_id, run.project, run.entity = r.run_id, r.project, r.entity
            run.name, run.group, run.notes = r.display_name, r.run_group, r.notes
            run.tags = list(r.tags)
            if r.HasField("start_time"):
                run.start_time = r.start_time.seconds + r.start_time.nanos / 1e9
            for item in r.config.update:
                _set(run.config, item)
            for item in r.config.remove:
                _remove(run.config, item)
        elif kind == "config":
            for item in record.config.update:
                _set(run.config, item)
            for item in record.config.remove:
                _remove(run.config, item)
        elif kind == "history":
            values: dict[str, Any] = {}
            for item in record.history.item:
                _set(values, item)  # media (wandb.Image...) arrive as nested keys: a dict per value
            step = values.pop("_step", None)
            timestamp, runtime = values.pop("_timestamp", None), values.pop("_runtime", None)
            num = int(step) if step is not None else int(record.history.step.num)
            run.history.append(HistoryRow(num, values, timestamp, runtime))
        elif kind == "summary":
            for item in record.summary.update:
                _set(run.summary, item)
            for item in record.summary.remove:
                _remove(run.summary, item)
        elif kind == "artifact":
            a = record.artifact
            entries = [ArtifactFile(c.path, int(c.size), c.local_path, c.digest) for c in a.manifest.contents]
            run.artifacts.append(LoggedArtifact(a.name, a.type, json.loads(a.metadata or "{}"), entries))
        elif kind == "files":
            run.files += [f.path for f in record.files.files]
        elif kind == "exit":
            run.exit_code, run.runtime = int(record.exit.exit_code), float(record.exit.runtime)
    run.complete = not torn
    run.config.pop("_wandb", None)
    for key in (*INTERNAL_KEYS, "_wandb"):
        run.summary.pop(key, None)
    return run
