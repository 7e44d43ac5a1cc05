"""What a stopping collector says is missing is what the store says, not a gap seen on the way."""

from __future__ import annotations

from array import array
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from aquarium.agent.redis_keys import BATCH_FIELD, RedisKeys
from aquarium.agent.wire import Batch, BatchId, MetricChunk, pack_batch, pack_columns
from aquarium.cli.serve import summary_line
from aquarium.collector import Collector, CollectorSettings


def batch(seq: int) -> bytes:
    steps, values, times = pack_columns(array("q", [seq]), array("d", [float(seq)]), array("d", [1.0]))
    return pack_batch(Batch(BatchId("gappy", 0, "inc-1", seq), [MetricChunk("loss", steps, values, times)]))


@pytest.fixture
def collector(redis_url: str, tmp_path: Path) -> Iterator[Collector]:
    # one entry per read: each batch is its own transaction, as when batches arrive apart
    settings = CollectorSettings(redis_url=redis_url, data_dir=tmp_path / "store", read_count=1, ingest_spool=False)
    worker = Collector(settings)
    yield worker
    worker.close()


def send(client: redis.Redis, *seqs: int) -> None:
    for seq in seqs:
        client.xadd(RedisKeys().stream, {BATCH_FIELD: batch(seq)})


def test_a_gap_filled_later_in_the_same_session_is_not_reported(collector: Collector, client: redis.Redis) -> None:
    send(client, 1, 0)  # seq 1 is stored while seq 0 is still on its way
    collector.run(burst=True)
    assert collector.stats.gaps  # the collector saw the gap...
    line = summary_line(collector)
    assert "stored 2 batches (2 points)" in line and "missing" not in line  # ...the store has none missing


def test_a_gap_the_store_still_has_is_reported(collector: Collector, client: redis.Redis) -> None:
    send(client, 0, 2)
    collector.run(burst=True)
    assert "1 batch missing in 1 rank incarnation" in summary_line(collector)
