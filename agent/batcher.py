"""The point queue the training thread appends to, and the batches the shipper cuts from it.

The queue is four flat `array`s (steps, wall times, key-set ids, values) plus the list of key
sets: a ``log`` call allocates no Python objects the cyclic GC must track, costs ~56 bytes a
step, and needs no lock. The training thread appends values first and the key-set id last,
so an entry is complete once its id is visible; the shipper takes only complete prefixes
(every array operation is atomic under the GIL). An entry whose appends were interrupted (a
KeyboardInterrupt lands between two of them) is taken back with ``drop_partial``, so the
columns never shift against each other. Cutting is columnar at C speed (slices and
strided slices of arrays), never a Python loop per point.
"""

from __future__ import annotations

import threading
from array import array
from collections.abc import Iterable
from itertools import groupby
from typing import Any

import msgpack

from .wire import MAX_BATCH_BYTES, Batch, BatchId, MetricChunk, pack_columns, packed_artifact_bytes

# Keep well below the wire limit: msgpack framing, event maps and ids need room too.
BATCH_BUDGET = MAX_BATCH_BYTES - 64 * 1024
POINT_BYTES = 24
CHUNK_OVERHEAD = 32

Columns = dict[str, tuple["array[int]", "array[float]", "array[float]"]]


class PointQueue:
    """Append-only from the training thread; drained by prefix from the shipper thread."""

    def __init__(self) -> None:
        self.steps = array("q")
        self.times = array("d")
        self.key_set_ids = array("l")
        self.values = array("d")
        self.key_sets: list[tuple[str, ...]] = []
        self.ids_by_keys: dict[tuple[str, ...], int] = {}
        self._register_lock = threading.Lock()
        self._take_lock = threading.Lock()  # take() against drop_partial(): both read the four lengths

    def __len__(self) -> int:
        return len(self.key_set_ids)

    def register(self, keys: tuple[str, ...]) -> int:
        """The id of a key set, registered on first use (rare: a lock is affordable here, and
        two logging threads may meet a new key set at once)."""
        with self._register_lock:
            key_set = self.ids_by_keys.get(keys)
            if key_set is None:
                self.key_sets.append(keys)
                key_set = self.ids_by_keys[keys] = len(self.key_sets) - 1
            return key_set

    def append_entries(self, entries: Iterable[tuple[int, float, tuple[str, ...], tuple[float, ...]]]) -> None:
        """Append whole entries, for a queue only one thread writes (the shipper's side queue, a
        tracker's history)."""
        for step, at, keys, values in entries:
            key_set = self.ids_by_keys.get(keys)
            if key_set is None:
                key_set = self.register(keys)
            self.values.extend(values)
            self.steps.append(step)
            self.times.append(at)
            self.key_set_ids.append(key_set)

    def drop_partial(self) -> bool:
        """Take back what an interrupted append left after the last complete entry (its values,
        step or time without its key-set id); whether there was any. Called by the appending
        thread, rarely: the sum over the queued ids is affordable there."""
        with self._take_lock:
            n = len(self.key_set_ids)
            widths = [len(keys) for keys in self.key_sets]
            complete_values = sum(map(widths.__getitem__, self.key_set_ids))
            partial = len(self.steps) > n or len(self.times) > n or len(self.values) > complete_values
            del self.steps[n:]
            del self.times[n:]
            del self.values[complete_values:]
            return partial

    def take(self, limit: int) -> Columns:
        """Remove up to ``limit`` complete entries and return them as columns per key."""
        with self._take_lock:
            return self._take(limit)

    def _take(self, limit: int) -> Columns:
        n = min(len(self.key_set_ids), limit)
        if n == 0:
            return {}
        ids = self.key_set_ids[:n]
        del self.key_set_ids[:n]
        steps, times = self.steps[:n], self.times[:n]
        del self.steps[:n]
        del self.times[:n]
        key_sets = self.key_sets
        if ids.count(ids[0]) == n:
            keys = key_sets[ids[0]]
            width = len(keys)
            values = self.values[: n * width]
            del self.values[: n * width]
            return {key: (steps, values[i::width], times) for i, key in enumerate(keys)}
        widths = [len(k) for k in key_sets]
        total = sum(map(widths.__getitem__, ids))
        values = self.values[:total]
        del self.values[:total]
        return _mixed_columns(ids, steps, times, values, key_sets)


def merge_columns(first: Columns, second: Columns) -> Columns:
    """Both sets of columns, ``first``'s points before ``second``'s for a key in both."""
    if not second:
        return first
    merged = dict(first)
    for key, (steps, values, times) in second.items():
        if key in merged:
            old_steps, old_values, old_times = merged[key]
            merged[key] = (old_steps + steps, old_values + values, old_times + times)
        else:
            merged[key] = (steps, values, times)
    return merged


def _mixed_columns(
    ids: "array[int]",
    steps: "array[int]",
    times: "array[float]",
    values: "array[float]",
    key_sets: list[tuple[str, ...]],
) -> Columns:
    """Columns when entries log different key sets: one slice per run of equal key sets."""
    parts: dict[str, list[tuple["array[int]", "array[float]", "array[float]"]]] = {}
    pos = offset = 0
    for key_set_id, run in groupby(ids):
        m = sum(1 for _ in run)
        keys = key_sets[key_set_id]
        width = len(keys)
        block = values[offset : offset + m * width]
        step_part, time_part = steps[pos : pos + m], times[pos : pos + m]
        for i, key in enumerate(keys):
            parts.setdefault(key, []).append((step_part, block[i::width], time_part))
        pos += m
        offset += m * width
    result: Columns = {}
    for key, key_parts in parts.items():
        if len(key_parts) == 1:
            result[key] = key_parts[0]
            continue
        s, v, t = array("q"), array("d"), array("d")
        for s_part, v_part, t_part in key_parts:
            s.extend(s_part)
            v.extend(v_part)
            t.extend(t_part)
        result[key] = (s, v, t)
    return result


def cut(cols: Columns, events: dict[str, Any], run: str, rank: int, incarnation: str, next_seq: int) -> list[Batch]:
    """Batches for ``cols`` and ``events``, seqs from ``next_seq``; events ride in the first
    (artifact records, in the order they were logged, in the next ones when it is full).

    Each batch stays under BATCH_BUDGET bytes: a series larger than the room left is split at
    point boundaries across batches.
    """
    batches: list[Batch] = []

    def new_batch() -> Batch:
        batch = Batch(BatchId(run, rank, incarnation, next_seq + len(batches)))
        batches.append(batch)
        return batch

    current = new_batch()
    room = BATCH_BUDGET
    for name in ("params", "tags", "meta"):
        if events.get(name):
            room = _add_map_event(current, name, events[name], room, new_batch)
            current = batches[-1]
    if events.get("status"):
        current.status.extend(events["status"])
        room -= 64 * len(events["status"])
    for record in events.get("artifacts", ()):
        size = packed_artifact_bytes(record) + 16
        if size > room:
            current, room = new_batch(), BATCH_BUDGET
        current.artifacts.append(record)
        room -= size
    shared: dict[int, bytes] = {}  # keys logged together share their step and time columns
    for key, (steps, values, times) in cols.items():
        if id(steps) not in shared:
            shared[id(steps)], _, shared[id(times)] = pack_columns(steps, array("d"), times)
        step_bytes, time_bytes = shared[id(steps)], shared[id(times)]
        value_bytes = pack_columns(array("q"), values, array("d"))[1]
        n, offset = len(values), 0
        key_bytes = len(key.encode())
        while offset < n:
            fit = (room - CHUNK_OVERHEAD - key_bytes) // POINT_BYTES
            if fit <= 0:
                current, room = new_batch(), BATCH_BUDGET
                continue
            take = min(fit, n - offset)
            if take == n:
                current.metrics.append(MetricChunk(key, step_bytes, value_bytes, time_bytes))
            else:
                a, b = offset * 8, (offset + take) * 8
                current.metrics.append(MetricChunk(key, step_bytes[a:b], value_bytes[a:b], time_bytes[a:b]))
            room -= CHUNK_OVERHEAD + key_bytes + take * POINT_BYTES
            offset += take
    return batches


def _add_map_event(current: Batch, name: str, mapping: dict[str, Any], room: int, new_batch: Any) -> int:
    """Put a params/tags/meta map into batches, splitting it by keys when it is too large."""
    target = getattr(current, name)
    for key, value in mapping.items():
        size = len(msgpack.packb([key, value], use_bin_type=True))
        if size > room and (target or current.metrics):
            current = new_batch()
            target, room = getattr(current, name), BATCH_BUDGET
        target[key] = value
        room -= size
    return room
