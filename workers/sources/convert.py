"""An ``ImportedRun`` as agent wire batches: deterministic ids and bytes, names Aquarium accepts.

Batch ``(run, 0, "import", seq)``, seqs 0..n in a fixed order: seq 0 carries the run's metadata
(name, experiment, original start time, where it came from), its params and tags and the start
status; then the metric chunks, series by series in key order; the last batch the final status
at the original end time. The same source content always gives the same bytes, so a second
import is a duplicate the store's ledger drops, never a second copy. ``meta["import"]["digest"]``
fingerprints the content: an import of a changed source is told apart from a repeat.

What Aquarium cannot take is converted and reported (never dropped silently): names it rejects
(empty, over 250 characters, control characters, lone surrogates) are rewritten; nested params
become dotted keys; values over the text limit are cut; NaN and +/-Inf are kept exactly.
"""

from __future__ import annotations

import hashlib
import math
from array import array
from collections.abc import Iterator
from typing import Any

import msgpack

from aquarium.agent.errors import AquariumError
from aquarium.agent.statuses import TERMINAL_STATUSES
from aquarium.agent.values import MAX_NAME_LENGTH, MAX_PARAM_DEPTH, MAX_TEXT_CHARS, coerce_param, encodable_text
from aquarium.agent.wire import Batch, BatchId, MetricChunk, pack_batch, pack_columns

from ..report import Report
from .base import INCARNATION, ImportedRun

POINTS_PER_BATCH = 32_768  # 24 bytes a point: about 800 KB, under the 1 MiB batch limit
EVENT_BYTES_PER_BATCH = 768 * 1024
MIN_STEP, MAX_STEP = -(2**63), 2**63 - 1


def storable_name(name: str) -> str:
    """``name`` as Aquarium stores it: UTF-8-encodable, printable, non-empty, at most 250 characters."""
    text = encodable_text(str(name), 4 * MAX_NAME_LENGTH)
    text = "".join(c if c.isprintable() else "_" for c in text)[:MAX_NAME_LENGTH]
    return text if text.strip() else "_"


class _Names:
    """Rewrites names into the report; two names rewritten alike are kept apart (``~2``, ``~3``)."""

    def __init__(self, report: Report, field_name: str, what: str) -> None:
        self.report, self.field, self.what = report, field_name, what
        self.used: set[str] = set()

    def __call__(self, name: str, count: int = 1) -> str:
        fixed = storable_name(name)
        n = 1
        while fixed in self.used:
            n += 1
            fixed = f"{storable_name(name)[: MAX_NAME_LENGTH - 4]}~{n}"
        self.used.add(fixed)
        if fixed != name:
            self.report.note(
                self.field, "renamed", f"{self.what} names Aquarium rejects (empty, control characters, over "
                f"{MAX_NAME_LENGTH} characters, lone surrogates) rewritten", count, example=f"{name!r} -> {fixed!r}",
            )  # fmt: skip
        return fixed


def _flatten(params: dict[str, Any], prefix: str = "", depth: int = 1) -> Iterator[tuple[str, Any, bool]]:
    """(dotted key, value, came from a nested dict) for every leaf, as ``log_params`` flattens."""
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value and depth < MAX_PARAM_DEPTH:
            for leaf in _flatten(value, name + ".", depth + 1):
                yield leaf[0], leaf[1], True
        else:
            yield name, value, bool(prefix)


def _param_value(report: Report, key: str, value: Any) -> Any:
    try:
        return coerce_param(key, value)
    except AquariumError:
        text = encodable_text(str(value), MAX_TEXT_CHARS)
        report.note("params", "truncated", f"values Aquarium cannot take as they are: their text, cut to "
                    f"{MAX_TEXT_CHARS} characters", example=key)  # fmt: skip
        return text


def _tag_value(report: Report, key: str, value: Any) -> str:
    text = value if isinstance(value, str) else str(value)
    fixed = encodable_text(text, MAX_TEXT_CHARS)
    if fixed != text:
        report.note("tags", "truncated", f"values cut to {MAX_TEXT_CHARS} characters (lone surrogates escaped)",
                    example=key)  # fmt: skip
    return fixed


def _events(run: ImportedRun, report: Report) -> tuple[dict[str, Any], dict[str, str]]:
    params: dict[str, Any] = {}
    names = _Names(report, "params", "param")
    for key, value, nested in _flatten(run.params):
        if nested:
            report.note("params", "flattened", "nested dicts as dotted keys, as log_params stores them", example=key)
        params[names(key)] = _param_value(report, key, value)
        report.keep("params")
    tags: dict[str, str] = {}
    names = _Names(report, "tags", "tag")
    for key, value in run.tags.items():
        tags[names(str(key))] = _tag_value(report, str(key), value)
        report.keep("tags")
    return dict(sorted(params.items())), dict(sorted(tags.items()))


def _status_changes(run: ImportedRun, report: Report, last_time: float | None) -> tuple[list[Any], list[Any]]:
    """(status changes of the first batch, of the last one), at the source's own times."""
    status = run.status
    start = run.started_at
    if run.started_at is not None:
        report.keep("times")
    if status is None:
        return ([("running", start)] if start is not None else []), []
    if status in TERMINAL_STATUSES:
        end = run.ended_at
        if end is None:
            end = last_time if last_time is not None else start
            if end is not None:
                report.note("times", "end time", "the source has no end time: the last point's (or the start) time",
                            example=f"{status} at {end}")  # fmt: skip
        else:
            report.keep("times")
        if end is None:
            report.note("status", "no time", "a status needs a time and the source has none", kept=False,
                        example=status)  # fmt: skip
            return [], []
        report.keep("status")
        return ([("running", start)] if start is not None and start <= end else []), [(status, end)]
    at = start if start is not None else last_time
    if at is None:
        report.note("status", "no time", "a status needs a time and the source has none", kept=False, example=status)
        return [], []
    if run.ended_at is not None:
        report.note("times", "end time", "an end time of a run whose status did not end is not kept",
                    kept=False, example=status)  # fmt: skip
    report.keep("status")
    return [(status, at)], []


def _chunks(run: ImportedRun, report: Report) -> Iterator[MetricChunk]:
    names = _Names(report, "points", "metric")
    for series in sorted(run.series, key=lambda s: s.key):
        if not series.steps:
            continue
        key = names(series.key, len(series.steps))
        kept = [i for i, s in enumerate(series.steps) if MIN_STEP <= s <= MAX_STEP]
        if len(kept) != len(series.steps):
            report.note("points", "step range", "steps outside int64 are not kept",
                        len(series.steps) - len(kept), kept=False, example=key)  # fmt: skip
        steps = [series.steps[i] for i in kept]
        values = [float(series.values[i]) for i in kept]
        times = [float(series.times[i]) for i in kept]
        report.keep("points", len(steps))
        nan = sum(1 for v in values if math.isnan(v))
        inf = sum(1 for v in values if math.isinf(v))
        report.note("points", "NaN", "kept exactly (Aquarium stores NaN)", nan)
        report.note("points", "Inf", "kept exactly (Aquarium stores +/-Inf)", inf)
        no_time = sum(1 for t in times if math.isnan(t))
        report.note("times", "no wall time", "points the source gave no wall time: NaN", no_time, kept=False)
        repeated = len(steps) - len(set(steps))
        report.note("points", "repeated step", "stored, but a series reads back one value per step (the last "
                    "logged)", repeated, example=key)  # fmt: skip
        for a in range(0, len(steps), POINTS_PER_BATCH):
            part = slice(a, a + POINTS_PER_BATCH)
            yield MetricChunk(
                key, *pack_columns(array("q", steps[part]), array("d", values[part]), array("d", times[part]))
            )


def _meta(run: ImportedRun, digest: str) -> dict[str, Any]:
    meta: dict[str, Any] = {}
    if run.name:
        meta["name"] = storable_name(run.name)
    if run.experiment:
        meta["experiment"] = storable_name(run.experiment)
    if run.started_at is not None:
        meta["started_at"] = run.started_at
    meta["world_size"] = 1
    meta["import"] = {"source": run.source, "id": run.source_id, "location": run.location, **run.origin}
    meta["import"]["digest"] = digest
    return meta


def _sized(items: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """``items`` in pieces whose msgpack stays under EVENT_BYTES_PER_BATCH."""
    piece: dict[str, Any] = {}
    size = 0
    for key, value in items.items():
        item = len(msgpack.packb([key, value], use_bin_type=True))
        if piece and size + item > EVENT_BYTES_PER_BATCH:
            yield piece
            piece, size = {}, 0
        piece[key] = value
        size += item
    if piece:
        yield piece


def to_batches(run: ImportedRun, report: Report) -> tuple[list[bytes], str]:
    """The packed batches of ``run`` in seq order, and its content digest; counts and
    conversions go into ``report``."""
    run_id = run.run_id
    params, tags = _events(run, report)
    chunks = list(_chunks(run, report))
    last_time = max((t for s in run.series for t in s.times if not math.isnan(t)), default=None)
    first_status, last_status = _status_changes(run, report, last_time)

    def batch(seq: int, **events: Any) -> Batch:
        return Batch(BatchId(run_id, 0, INCARNATION, seq), **events)

    def build(digest: str) -> list[Batch]:
        batches = [batch(0, meta=_meta(run, digest), status=first_status)]
        for piece in _sized(params):
            batches.append(batch(len(batches), params=piece))
        for piece in _sized(tags):
            batches.append(batch(len(batches), tags=piece))
        pending: list[MetricChunk] = []
        points = 0
        for chunk in chunks:
            if pending and points + chunk.count > POINTS_PER_BATCH:
                batches.append(batch(len(batches), metrics=pending))
                pending, points = [], 0
            pending.append(chunk)
            points += chunk.count
        if pending:
            batches.append(batch(len(batches), metrics=pending))
        if last_status:
            batches.append(batch(len(batches), status=last_status))
        return batches

    draft = [pack_batch(b) for b in build("")]
    digest = hashlib.sha256(b"".join(draft)).hexdigest()[:32]
    return [pack_batch(b) for b in build(digest)], digest  # each under MAX_BATCH_BYTES, or pack_batch raises


def content_digest(run: dict[str, Any]) -> str | None:
    """The digest a stored imported run's metadata carries (None for a run that was not imported)."""
    found = (run.get("meta") or {}).get("import") or {}
    digest = found.get("digest") if isinstance(found, dict) else None
    return str(digest) if digest else None
