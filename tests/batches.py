"""Batches built by hand, for store tests: one metric chunk of the given steps and values."""

from __future__ import annotations

from array import array
from typing import Any

from aquarium.agent.wire import Batch, BatchId, MetricChunk


def make_batch(
    seq: int,
    steps: list[int],
    values: list[float],
    *,
    run: str = "r1",
    rank: int = 0,
    inc: str = "inc-a",
    key: str = "loss",
    **events: Any,
) -> Batch:
    chunk = MetricChunk(
        key,
        array("q", steps).tobytes(),
        array("d", values).tobytes(),
        array("d", [1.7e9 + s * 1e-3 for s in steps]).tobytes(),
    )
    return Batch(BatchId(run, rank, inc, seq), [chunk] if steps else [], **events)
