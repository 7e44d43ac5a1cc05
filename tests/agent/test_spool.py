"""The spool: length + CRC framing survives torn writes and corruption; the store ingests spool files.

Damage costs only the damaged records, and it is reported (``torn_bytes``, ``rejected``),
never silent. A file a live agent still writes is read but kept.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from ledger import Ledger, make_batch

import aquarium.agent as aq
from aquarium.agent.errors import RunNotFoundError
from aquarium.agent.spool import FRAME, SpoolHeader, SpoolWriter, read_spool, segment_path
from aquarium.agent.wire import Batch, pack_batch
from aquarium.collector import Store


def batches(run_id: str, seqs: range, inc: str = "inc-a") -> list[Batch]:
    return [make_batch(run_id, seq, list(range(seq * 10, seq * 10 + 10)), inc=inc) for seq in seqs]


def ledger_of(*groups: list[Batch]) -> Ledger:
    """The points of these batches, as the agent logged them."""
    ledger = Ledger()
    for group in groups:
        for batch in group:
            chunk = batch.metrics[0]
            for step, value in zip(memoryview(chunk.steps).cast("q"), memoryview(chunk.values).cast("d")):
                ledger.record(batch.id.run, chunk.key, batch.id.rank, step, value)
    return ledger


def write_spool(
    data_dir: Path, run_id: str, records: list[Batch], *, inc: str = "inc-a", close: bool = True
) -> tuple[Path, SpoolWriter]:
    """A spool file as the agent writes it; returns its path and its (closed) writer."""
    path = segment_path(data_dir / "spool", run_id, 0, inc, 0)
    writer = SpoolWriter(path, SpoolHeader(run_id, 0, inc, time.time()))
    for batch in records:
        writer.append(pack_batch(batch))
    if close:
        writer.close()
    else:
        writer.flush(fsync=False)
    return path, writer


def test_torn_tail_costs_only_the_last_record(data_dir: Path) -> None:
    good, torn = batches("torn", range(4)), batches("torn", range(4, 5))
    path, _ = write_spool(data_dir, "torn", good + torn)
    last_frame = FRAME.size + len(pack_batch(torn[0]))
    with open(path, "r+b") as f:  # a crash in the middle of the last write
        f.truncate(path.stat().st_size - 3)
    read = read_spool(path)
    assert len(read.records) == 4 and read.torn_bytes == last_frame - 3
    with Store(data_dir) as store:
        report = store.ingest_spool()
        assert (report.batches, report.torn_bytes, report.rejected) == (4, last_frame - 3, [])
        ledger_of(good).check(store)
    assert not path.exists()


def test_a_corrupt_record_is_skipped_and_the_gap_shows(data_dir: Path) -> None:
    records = batches("crc", range(5))
    path, writer = write_spool(data_dir, "crc", records)
    sizes = [FRAME.size + len(pack_batch(b)) for b in records]
    offset = writer.header_end + sizes[0] + sizes[1] + FRAME.size + 20  # inside record 2's payload
    with open(path, "r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0xFF]))
    read = read_spool(path)
    assert [r == pack_batch(b) for r, b in zip(read.records, records[:2] + records[3:])] == [True] * 4
    assert read.torn_bytes == sizes[2] and read.end_offset == path.stat().st_size
    with Store(data_dir) as store:
        report = store.ingest_spool()
        assert report.batches == 4 and report.torn_bytes == sizes[2]
        ledger_of(records[:2] + records[3:]).check(store, allow_gaps=True)
        incarnation = store.get_run("crc")["incarnations"][0]
        assert (incarnation["committed_seq"], incarnation["max_seq"], incarnation["missing"]) == (1, 4, 1)


def test_a_zero_filled_tail_is_torn_not_a_run_of_empty_records(data_dir: Path) -> None:
    records = batches("zeros", range(3))
    path, _ = write_spool(data_dir, "zeros", records)
    with open(path, "ab") as f:  # the blocks a crash allocated but never wrote
        f.write(b"\0" * 4096)
    read = read_spool(path)
    assert len(read.records) == 3 and read.torn_bytes == 4096
    with Store(data_dir) as store:
        report = store.ingest_spool()
        assert report.batches == 3 and report.rejected == []
        ledger_of(records).check(store)
    assert not path.exists()


def test_a_batch_of_another_run_is_rejected_and_the_file_kept(data_dir: Path) -> None:
    mine, theirs = batches("mine", range(2)), batches("theirs", range(1))
    path, _ = write_spool(data_dir, "mine", [mine[0], theirs[0], mine[1]])
    with Store(data_dir) as store:
        report = store.ingest_spool()
        assert report.stored == 2 and len(report.rejected) == 1
        assert report.rejected[0] == (str(path), "batch theirs/0/inc-a in the spool of mine/0/inc-a")
        ledger_of(mine).check(store)
        with pytest.raises(RunNotFoundError):
            store.get_run("theirs")
    assert not path.exists() and path.with_name(path.name + ".rejected").exists()


def test_a_file_that_is_not_a_spool_is_reported_and_kept(data_dir: Path) -> None:
    path = segment_path(data_dir / "spool", "junk", 0, "inc-a", 0)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a spool at all")
    with Store(data_dir) as store:
        report = store.ingest_spool()
    assert report.rejected == [(str(path), f"spool {path}: not an Aquarium spool file (bad magic)")]
    assert path.exists()


def test_opening_the_store_ingests_an_offline_run(data_dir: Path) -> None:
    ledger = Ledger()
    run = aq.init(experiment="offline", run_id="offline-run", mode="offline", data_dir=data_dir)
    for step in range(3000):
        ledger.log(run, step)
    report = run.finish(timeout=30.0)
    assert report.spooled_files and report.committed_seq == -1
    with Store(data_dir) as store:  # what `aquarium up` does first
        store.ingest_spool()
        ledger.check(store)
        assert store.get_run("offline-run")["status"] == "completed"
    assert not any(Path(p).exists() for p in report.spooled_files)


def test_a_spool_still_written_is_ingested_but_kept(data_dir: Path) -> None:
    first, later = batches("live", range(3)), batches("live", range(3, 5))
    path, writer = write_spool(data_dir, "live", first, close=False)
    try:
        with Store(data_dir) as store:
            assert store.ingest_spool(include_live=False).files == 0  # the collector's periodic pass
            report = store.ingest_spool()  # at startup, live files are read too
            assert report.stored == 3 and report.kept_live == [str(path)] and path.exists()
            ledger_of(first).check(store)
            for batch in later:
                writer.append(pack_batch(batch))
            writer.close()  # the agent finished
            report = store.ingest_spool(include_live=False)
            assert (report.stored, report.duplicates, report.deleted) == (2, 3, [str(path)])
            ledger_of(first, later).check(store)
    finally:
        writer.close()
    assert not path.exists()


def test_a_full_disk_drops_points_counted_and_reported(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import errno

    from aquarium.agent import spool as spool_module

    def disk_full(self: object, parts: list[bytes]) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    run = aq.init(experiment="disk", mode="offline", data_dir=data_dir)
    monkeypatch.setattr(spool_module.SpoolWriter, "_write", disk_full)
    for step in range(500):
        run.log({"a": 1.0, "b": 2.0}, step=step)
    report = run.finish()
    assert report.points == 1000 and report.dropped_points == 1000
    assert run.stats.dropped_points == 1000


@pytest.mark.parametrize("interrupted", ["_push_values", "_push_step", "_push_time", "_push_key_set"])
def test_a_log_interrupted_between_its_appends_leaves_the_other_points_aligned(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, interrupted: str
) -> None:
    """Ctrl-C in a notebook lands between two of log()'s appends; the program goes on logging."""
    run = aq.init(experiment="offline", run_id="ctrl-c", mode="offline", data_dir=data_dir)
    run.log({"a": 1.0, "b": -1.0}, step=0)
    real = getattr(run, interrupted)

    def append_then_interrupt(item: object) -> None:
        real(item)  # the append happens, then the signal's exception is raised
        raise KeyboardInterrupt

    monkeypatch.setattr(run, interrupted, append_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run.log({"a": 2.0, "b": -2.0})
    monkeypatch.setattr(run, interrupted, real)
    for step in range(2, 2000):
        run.log({"a": float(step), "b": float(-step)}, step=step)
    run.log({"a": 5000.0, "b": -5000.0})  # the default step: after the last one logged
    run.finish(timeout=30.0)
    with Store(data_dir) as store:
        store.ingest_spool()
        a, b = store.read_series("ctrl-c", "a"), store.read_series("ctrl-c", "b")
    complete = interrupted == "_push_key_set"  # its last append done: the point was logged
    expected = [0, *([1] if complete else []), *range(2, 2001)]
    assert a.steps.tolist() == b.steps.tolist() == expected
    logged = {0: 1.0, 1: 2.0, 2000: 5000.0}
    assert a.values.tolist() == [logged.get(s, float(s)) for s in expected]
    assert b.values.tolist() == [-v for v in a.values.tolist()]
    assert run.stats.dropped_points == 0
