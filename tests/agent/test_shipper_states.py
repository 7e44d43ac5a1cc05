"""The shipper's three state holders, one transition at a time: outbox, segments, link."""

from __future__ import annotations

import errno
import socket
from pathlib import Path

import pytest
import redis
from ledger import make_batch
from servers import FaultyRedis

from aquarium.agent.identity import Identity
from aquarium.agent.link import Link, LinkState
from aquarium.agent.outbox import Delivery, Held, Outbox
from aquarium.agent.redis_keys import RedisKeys
from aquarium.agent.segments import Segments
from aquarium.agent.shipper import _in_round_trips
from aquarium.agent.spool import SpoolHeader, SpoolWriter, read_spool, segment_path
from aquarium.agent.wire import pack_batch

KEYS = RedisKeys()


def held(seq: int, points: int = 10) -> Held:
    return Held(seq, pack_batch(make_batch("states", seq, list(range(points)), inc="inc-b")), points)


def identity(inc: str = "inc-b") -> Identity:
    return Identity(run_id="states", rank=0, world_size=1, incarnation=inc, host="h", pid=1)


# -- outbox ------------------------------------------------------------------------------------
def test_outbox_holds_unsent_until_sent_then_forgets_what_the_watermark_covers() -> None:
    box = Outbox()
    for seq in range(4):
        box.hold(held(seq))
    assert [h.seq for h in box.unsent()] == [0, 1, 2, 3]
    box.mark_sent(box.unsent()[:3])
    assert [h.seq for h in box.unsent()] == [3]
    assert box.confirm(1) == 2 and [h.seq for h in box] == [2, 3]
    assert box.rewind() == 1  # seq 2 was on the server; now nothing is known to be
    assert all(h.state is Delivery.UNSENT for h in box)


def test_outbox_puts_a_returning_batch_back_in_seq_order() -> None:
    box = Outbox()
    for seq in (0, 2, 3):
        box.hold(held(seq))
    box.hold(held(1))  # came back from a failed fsync
    assert [h.seq for h in box] == [0, 1, 2, 3]
    assert box.bytes == sum(len(h.data) for h in box)


def test_sends_are_split_into_round_trips_of_bounded_size() -> None:
    batches = [Held(seq, b"x" * 400, 1) for seq in range(5)]
    groups = _in_round_trips(batches, max_bytes=1000)
    assert [[h.seq for h in group] for group in groups] == [[0, 1], [2, 3], [4]]
    assert _in_round_trips([Held(0, b"x" * 5000, 1)], max_bytes=1000)[0][0].seq == 0  # never empty
    assert _in_round_trips([], max_bytes=1000) == []


# -- segments ----------------------------------------------------------------------------------
def test_segments_replay_in_small_chunks_rewind_and_drop_when_confirmed(tmp_path: Path) -> None:
    segments = Segments(tmp_path, identity(), segment_bytes=1 << 20)
    for seq in range(5):
        segments.append(held(seq), replay=True)
    assert segments.sync() == [] and segments.replay_pending
    chunk = segments.next_chunk(max_bytes=1 << 20, max_records=2)
    assert chunk is not None and len(chunk.records) == 2
    segments.mark_replayed(chunk)
    rest = segments.next_chunk(max_bytes=1 << 20, max_records=100)
    assert rest is not None and len(rest.records) == 3
    segments.mark_replayed(rest)
    assert not segments.replay_pending
    assert segments.confirm(segments.own_field, 3) == 0  # seq 4 is not committed yet
    segments.rewind()  # Redis restarted: everything again
    assert segments.replay_pending
    again = segments.next_chunk(max_bytes=1 << 20, max_records=100)
    assert again is not None and len(again.records) == 5
    segments.mark_replayed(again)
    path = Path(segments.paths[0])
    assert segments.confirm(segments.own_field, 4) == 1 and not path.exists() and len(segments) == 0


def test_a_batch_already_on_the_server_is_spooled_without_being_replayed(tmp_path: Path) -> None:
    segments = Segments(tmp_path, identity(), segment_bytes=1 << 20)
    segments.append(Held(0, held(0).data, 10, Delivery.SENT), replay=False)
    assert not segments.replay_pending and len(segments) == 1
    assert segments.close() == []


def test_a_failed_fsync_returns_what_it_cut_off_and_the_file_keeps_only_what_was_synced(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    segments = Segments(tmp_path, identity(), segment_bytes=1 << 20)
    segments.append(held(0), replay=True)
    assert segments.sync() == []
    segments.append(held(1), replay=True)
    segments.append(held(2), replay=True)

    def disk_full(self: SpoolWriter) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SpoolWriter, "_sync", disk_full)
    assert [h.seq for h in segments.sync()] == [1, 2]
    assert len(read_spool(Path(segments.paths[0])).records) == 1  # exactly what was synced
    monkeypatch.undo()
    assert segments.close() == []


def test_a_failed_write_leaves_nothing_of_the_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    segments = Segments(tmp_path, identity(), segment_bytes=1 << 20)
    segments.append(held(0), replay=True)

    def half_then_full(self: SpoolWriter, parts: list[bytes]) -> None:
        data = b"".join(parts)
        self._file.write(data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(SpoolWriter, "_write", half_then_full)
    with pytest.raises(OSError):
        segments.append(held(1), replay=True)
    monkeypatch.undo()
    segments.append(held(2), replay=True)
    assert segments.close() == []
    read = read_spool(Path(segments.paths[0]))
    assert read.torn_bytes == 0 and len(read.records) == 2


def test_orphans_of_a_dead_incarnation_are_adopted_unless_locked(tmp_path: Path) -> None:
    dead = SpoolWriter(segment_path(tmp_path, "states", 0, "inc-a", 0), SpoolHeader("states", 0, "inc-a", 0.0))
    for seq in range(3):
        dead.append(pack_batch(make_batch("states", seq, [seq], inc="inc-a")))
    live = Segments(tmp_path, identity(), segment_bytes=1 << 20)
    assert live.adopt_orphans() == 0  # its writer still holds the lock: a live process
    dead.close()
    assert live.adopt_orphans() == 1 and live.replay_pending
    assert live.watermark_fields() == [live.own_field, RedisKeys.watermark_field(0, "inc-a")]
    chunk = live.next_chunk(1 << 20, 100)
    assert chunk is not None and len(chunk.records) == 3
    live.mark_replayed(chunk)
    assert live.confirm(live.own_field, 10) == 0  # another incarnation's watermark does not count
    assert live.confirm(RedisKeys.watermark_field(0, "inc-a"), 2) == 1 and len(live) == 0


# -- link --------------------------------------------------------------------------------------
def refused_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"redis://127.0.0.1:{s.getsockname()[1]}/0"


def test_link_backs_off_after_a_failure_and_retries_at_once_when_told() -> None:
    failures: list[str] = []
    link = Link(refused_url(), 0.5, 1.0, lambda cause, e: failures.append(cause))
    assert link.state is LinkState.DOWN
    assert link.connect(wait=True) is None and failures == ["connect"] and link.failures == 1
    assert link.state is LinkState.BACKING_OFF
    assert link.connect(wait=True) is None and failures == ["connect"]  # no attempt while backing off
    link.retry_now()
    assert link.connect(wait=True) is None and link.failures == 2


def test_link_success_resets_the_backoff_and_a_new_server_is_reported(redis_url: str) -> None:
    failures: list[str] = []
    link = Link(redis_url, 1.0, 3600.0, lambda cause, e: failures.append(cause))
    link.failures = 5  # as after a flaky stretch
    first = link.connect(wait=True)
    assert first is not None and not first.restarted and link.state is LinkState.UP and link.failures == 0
    client = redis.Redis.from_url(redis_url)
    client.hset(KEYS.watermarks("states"), "0/inc-b", 7)
    client.close()
    reply = link.exchange([b"x"], KEYS.stream, KEYS.watermarks("states"), ["0/inc-b", "0/inc-a"], "xadd")
    assert reply is not None and reply.watermarks == {"0/inc-b": 7} and not reply.restarted
    link._server_run_id = "an-earlier-server"  # what a restarted redis-server looks like
    reply = link.exchange([], KEYS.stream, KEYS.watermarks("states"), [], "watermark", check=True)
    assert reply is not None and reply.restarted
    link.close()
    assert failures == []


def test_a_frozen_redis_never_holds_the_caller_while_the_link_probes(fresh_redis: FaultyRedis) -> None:
    """The probe runs in the background: connect() returns at once, CONNECTING, while Redis
    cannot answer (a 30 s socket timeout: the probe cannot have given up yet)."""
    link = Link(fresh_redis.url, 30.0, 3600.0, lambda cause, e: None)
    fresh_redis.pause()
    try:
        assert link.connect() is None and link.state is LinkState.CONNECTING
        assert link.connect() is None and link.state is LinkState.CONNECTING  # the same probe
    finally:
        fresh_redis.resume()
    reply = link.connect(wait=True)
    assert reply is not None and link.state is LinkState.UP
    link.close()


def test_short_writes_continue_where_they_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    from aquarium.agent import spool

    real_writev = os.writev

    def at_most_1000_bytes(fd: int, buffers: list[memoryview]) -> int:
        budget, parts = 1000, []
        for buffer in buffers:
            parts.append(buffer[:budget])
            budget -= len(parts[-1])
            if not budget:
                break
        return real_writev(fd, parts)

    monkeypatch.setattr(spool.os, "writev", at_most_1000_bytes)
    segments = Segments(tmp_path, identity(), segment_bytes=1 << 20)
    batches = [held(seq, points=300) for seq in range(4)]
    segments.append_many(batches, replay=True)
    assert segments.close() == []
    assert read_spool(Path(segments.paths[0])).records == [h.data for h in batches]
