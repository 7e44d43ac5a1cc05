"""The wire format: the one place batches are packed and unpacked.

A batch is one msgpack map, at most 1 MiB::

    {"v": 1,                                   # version
     "id": [run, rank, incarnation, seq],      # the batch id; seq is contiguous per incarnation
     "m": [[key, steps, values, times], ...],  # metric chunks, one per series in this batch
     "p": {name: value},                       # parameters (optional)
     "t": {name: value},                       # tags (optional)
     "s": [[status, wall_time], ...],          # status changes (optional)
     "r": {...},                               # run metadata: name, experiment, host, ... (optional)
     "a": [{...}, ...]}                        # artifact records (optional), see ArtifactRecord

Metric chunks are columnar: ``steps`` packed little-endian int64, ``values`` and ``times``
(wall clock, seconds) packed little-endian float64, all three of the same length, carried as
msgpack ``bin``. Unknown keys are ignored, so newer agents can add fields within a version.
"""

from __future__ import annotations

import math
import re
import sys
from array import array
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgpack

from .artifact_names import ARTIFACT_KINDS, artifact_name_problem
from .errors import WireFormatError
from .identity import RUN_ID_PATTERN
from .values import MAX_NAME_LENGTH

VERSION = 1
MAX_BATCH_BYTES = 1 << 20
MAX_VALUE_DEPTH = 32  # nesting of params, tags and run metadata values (maps and lists)
MAX_INCARNATION_CHARS = 64
MAX_STATUS_CHARS = 64
MAX_INT64 = 2**63 - 1  # ranks and seqs are stored as SQLite integers
MIN_INT64 = -(2**63)
MAX_MEDIA_TYPE_CHARS = 127
MAX_FRAMEWORK_CHARS = 64
UPLOAD_ID_PATTERN = re.compile(r"^[0-9a-f]{32}$")
_BIG_ENDIAN = sys.byteorder == "big"


@dataclass(frozen=True, slots=True)
class BatchId:
    run: str
    rank: int
    incarnation: str
    seq: int


@dataclass(slots=True)
class MetricChunk:
    key: str
    steps: bytes
    values: bytes
    times: bytes

    @property
    def count(self) -> int:
        return len(self.steps) // 8


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """That an artifact was logged: the bytes follow over HTTP, keyed by (run, ``upload``).

    The record travels in the batch stream, so it is stored exactly once and in order with the
    run's other events; the sha256 is not known when the call returns (hashing a large file
    would block training), so the collector learns it from the upload and joins the two.
    ``size`` is the file's size when the call was made: an upload of different bytes is
    marked as changed, never stored as if it were the same file.
    """

    upload: str  # 32 lowercase hex digits (uuid4), unique per artifact call
    name: str  # a relative POSIX path, checked by artifact_names
    kind: str  # "file", "model" or "figure"
    size: int
    time: float  # wall clock when logged
    step: int | None = None
    framework: str | None = None  # for models: "pytorch", "sklearn", ...
    media_type: str = "application/octet-stream"
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Batch:
    id: BatchId
    metrics: list[MetricChunk] = field(default_factory=list)
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    status: list[tuple[str, float]] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)
    artifacts: list[ArtifactRecord] = field(default_factory=list)

    @property
    def point_count(self) -> int:
        return sum(len(c.steps) for c in self.metrics) // 8


def pack_columns(steps: "array[int]", values: "array[float]", times: "array[float]") -> tuple[bytes, bytes, bytes]:
    """The little-endian bytes of three `array` columns (int64 'q', float64 'd', float64 'd')."""
    if _BIG_ENDIAN:  # pragma: no cover - exercised only on big-endian hosts
        steps, values, times = array("q", steps), array("d", values), array("d", times)
        for column in (steps, values, times):
            column.byteswap()
    return steps.tobytes(), values.tobytes(), times.tobytes()


def pack_batch(batch: Batch) -> bytes:
    """Serialise ``batch``; raises WireFormatError if it would exceed MAX_BATCH_BYTES."""
    body: dict[str, Any] = {
        "v": VERSION,
        "id": [batch.id.run, batch.id.rank, batch.id.incarnation, batch.id.seq],
        "m": [[c.key, c.steps, c.values, c.times] for c in batch.metrics],
    }
    if batch.params:
        body["p"] = batch.params
    if batch.tags:
        body["t"] = batch.tags
    if batch.status:
        body["s"] = [list(s) for s in batch.status]
    if batch.meta:
        body["r"] = batch.meta
    if batch.artifacts:
        body["a"] = [_pack_artifact(a) for a in batch.artifacts]
    data: bytes = msgpack.packb(body, use_bin_type=True)
    if len(data) > MAX_BATCH_BYTES:
        raise WireFormatError(f"batch of {len(data)} bytes exceeds the {MAX_BATCH_BYTES}-byte limit")
    return data


def unpack_batch(data: bytes) -> Batch:
    """Parse and validate one batch; raises WireFormatError(reason) for anything malformed.

    Bytes from the stream are untrusted: lengths, nesting depth and every id field are bounded
    here, so nothing downstream (the store's JSON, a reason's text) recurses or grows without
    limit, and no other exception type escapes.
    """
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise WireFormatError(f"expected bytes, got {type(data).__name__}")
    if len(data) > MAX_BATCH_BYTES:
        raise WireFormatError(f"batch of {len(data)} bytes exceeds the {MAX_BATCH_BYTES}-byte limit")
    try:
        body = msgpack.unpackb(
            data,
            raw=False,
            strict_map_key=True,
            use_list=True,
            max_str_len=MAX_BATCH_BYTES,
            max_bin_len=MAX_BATCH_BYTES,
            max_array_len=MAX_BATCH_BYTES,
            max_map_len=MAX_BATCH_BYTES,
            max_ext_len=0,  # the agent never sends extension types
        )
    except msgpack.StackError as e:
        raise WireFormatError("not msgpack (nested deeper than the decoder's stack)") from e
    except Exception as e:  # msgpack raises several unrelated types for bad input
        raise WireFormatError(f"not msgpack ({type(e).__name__}: {str(e)[:200]})") from e
    if not isinstance(body, dict):
        raise WireFormatError(f"top level is {_describe(body)}, not a map")
    version = body.get("v")
    if type(version) is not int or version != VERSION:
        raise WireFormatError(f"unknown wire version {_describe(version)} (this build reads version {VERSION})")
    return Batch(
        id=_batch_id(body.get("id")),
        metrics=[_chunk(c) for c in _list(body.get("m", []), "m")],
        params=_map(body.get("p", {}), "p"),
        tags=_map(body.get("t", {}), "t"),
        status=[_status(s) for s in _list(body.get("s", []), "s")],
        meta=_map(body.get("r", {}), "r"),
        artifacts=[_artifact(a) for a in _list(body.get("a", []), "a")],
    )


def _describe(value: Any) -> str:
    """A short, non-recursive description of an untrusted value, for error messages."""
    if value is None or type(value) in (bool, int, float):
        return repr(value)
    if isinstance(value, str):
        shown = repr(value[:40])
        return shown if len(value) <= 40 else f"{shown}... ({len(value)} characters)"
    if isinstance(value, (list, dict, bytes)):
        return f"a {type(value).__name__} of {len(value)} items"
    return f"a {type(value).__name__}"


# Strings already validated (run ids, incarnations, metric names): a collector sees the same few
# over and over, and checking them again was most of the cost of decoding a small batch.
_valid_ids: set[tuple[str, str]] = set()  # (run, incarnation)
_valid_keys: set[str] = set()
_VALID_MAX = 100_000


def _remember(seen: set[Any], item: Any) -> None:
    if len(seen) >= _VALID_MAX:
        seen.clear()
    seen.add(item)


def _batch_id(raw: Any) -> BatchId:
    if not (isinstance(raw, list) and len(raw) == 4):
        raise WireFormatError("id must be [run, rank, incarnation, seq]")
    run, rank, inc, seq = raw
    if type(rank) is not int or not 0 <= rank <= MAX_INT64:
        raise WireFormatError(f"bad rank {_describe(rank)}")
    if type(seq) is not int or not 0 <= seq <= MAX_INT64:
        raise WireFormatError(f"bad seq {_describe(seq)}")
    if type(run) is str and type(inc) is str and (run, inc) in _valid_ids:
        return BatchId(run, rank, inc, seq)
    if not (type(run) is str and RUN_ID_PATTERN.fullmatch(run)):
        raise WireFormatError(f"bad run id {_describe(run)}")
    if not _printable(inc, MAX_INCARNATION_CHARS):
        raise WireFormatError(f"bad incarnation {_describe(inc)}")
    _remember(_valid_ids, (run, inc))
    return BatchId(run, rank, inc, seq)


def _chunk(raw: Any) -> MetricChunk:
    if not (isinstance(raw, list) and len(raw) == 4):
        raise WireFormatError("a metric chunk must be [key, steps, values, times]")
    key, steps, values, times = raw
    if type(key) is not str or key not in _valid_keys:
        if not _printable(key, MAX_NAME_LENGTH):
            raise WireFormatError(f"bad metric name {_describe(key)}")
        _remember(_valid_keys, key)
    if not (isinstance(steps, bytes) and isinstance(values, bytes) and isinstance(times, bytes)):
        raise WireFormatError(f"metric {key!r}: columns must be bin")
    n = len(steps)
    if n == 0 or n % 8 or len(values) != n or len(times) != n:
        raise WireFormatError(
            f"metric {key!r}: column lengths {n}/{len(values)}/{len(times)} are not equal multiples of 8"
        )
    return MetricChunk(key, steps, values, times)


def _status(raw: Any) -> tuple[str, float]:
    if not (isinstance(raw, list) and len(raw) == 2):
        raise WireFormatError(f"a status change must be [status, time], got {_describe(raw)}")
    status, at = raw
    if not _printable(status, MAX_STATUS_CHARS):
        raise WireFormatError(f"bad status {_describe(status)}")
    if type(at) not in (int, float) or not math.isfinite(at):
        raise WireFormatError(f"bad status time {_describe(at)}")
    return status, float(at)


def _pack_artifact(a: ArtifactRecord) -> dict[str, Any]:
    packed: dict[str, Any] = {
        "upload": a.upload, "name": a.name, "kind": a.kind, "size": a.size, "time": a.time,
        "media_type": a.media_type,
    }  # fmt: skip
    if a.step is not None:
        packed["step"] = a.step
    if a.framework is not None:
        packed["framework"] = a.framework
    if a.meta:
        packed["meta"] = a.meta
    return packed


def packed_artifact_bytes(a: ArtifactRecord) -> int:
    """How many bytes ``a`` takes in a batch (raises what packing it would raise)."""
    return len(msgpack.packb(_pack_artifact(a), use_bin_type=True))


def _artifact(raw: Any) -> ArtifactRecord:
    if not isinstance(raw, dict):
        raise WireFormatError(f"an artifact record must be a map, got {_describe(raw)}")
    raw = _map(raw, "artifact record")
    upload, name, kind = raw.get("upload"), raw.get("name"), raw.get("kind")
    if not (type(upload) is str and UPLOAD_ID_PATTERN.fullmatch(upload)):
        raise WireFormatError(f"bad artifact upload id {_describe(upload)}")
    problem = artifact_name_problem(name)
    if problem is not None:
        raise WireFormatError(f"bad artifact name {_describe(name)}: {problem}")
    if kind not in ARTIFACT_KINDS:
        raise WireFormatError(f"bad artifact kind {_describe(kind)}")
    size, at, step = raw.get("size"), raw.get("time"), raw.get("step")
    if type(size) is not int or not 0 <= size <= MAX_INT64:
        raise WireFormatError(f"bad artifact size {_describe(size)}")
    if type(at) not in (int, float) or not math.isfinite(at):
        raise WireFormatError(f"bad artifact time {_describe(at)}")
    if step is not None and (type(step) is not int or not MIN_INT64 <= step <= MAX_INT64):
        raise WireFormatError(f"bad artifact step {_describe(step)}")
    framework = raw.get("framework")
    if framework is not None and not _printable(framework, MAX_FRAMEWORK_CHARS):
        raise WireFormatError(f"bad artifact framework {_describe(framework)}")
    media_type = raw.get("media_type", "application/octet-stream")
    if not (_printable(media_type, MAX_MEDIA_TYPE_CHARS) and "/" in media_type):
        raise WireFormatError(f"bad artifact media type {_describe(media_type)}")
    return ArtifactRecord(
        upload, name, kind, size, float(at), step, framework, media_type, _map(raw.get("meta", {}), "artifact meta")
    )


def _printable(value: Any, limit: int) -> bool:
    return type(value) is str and 0 < len(value) <= limit and value.isprintable()


def _list(raw: Any, name: str) -> list[Any]:
    if not isinstance(raw, list):
        raise WireFormatError(f"{name} must be a list, not {type(raw).__name__}")
    return raw


def _map(raw: Any, name: str) -> dict[str, Any]:
    """A params/tags/meta map: string keys at every level, nested at most MAX_VALUE_DEPTH deep."""
    if not isinstance(raw, dict):
        raise WireFormatError(f"{name} must be a map, not {type(raw).__name__}")
    if not raw:  # most batches carry no params, tags or metadata
        return raw
    # iterative, so a hostile depth costs a bounded loop rather than a RecursionError
    todo: list[tuple[Any, int]] = [(raw, 1)]
    while todo:
        value, depth = todo.pop()
        children: Iterable[Any]
        if isinstance(value, dict):
            for key in value:
                if type(key) is not str:
                    raise WireFormatError(f"{name}: map keys must be strings, not {_describe(key)}")
            children = value.values()
        elif isinstance(value, list):
            children = value
        else:
            continue
        for child in children:
            if isinstance(child, (dict, list)):
                if depth >= MAX_VALUE_DEPTH:
                    raise WireFormatError(f"{name}: values nest deeper than {MAX_VALUE_DEPTH} levels")
                todo.append((child, depth + 1))
    return raw
