"""The soak's ledger checker (bench/_soak_ledger.py) on a tiny clean run through the soak's own
rank code, then on a doctored ledger and store: it must find a lost and a duplicated point."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ledger import make_batch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))
import _processes as P
import _soak_ledger as L
from _soak_rank import run_rank

from aquarium.collector import Store

RUN = "soak-check"
RANKS = 2


@pytest.fixture
def clean_run(redis_url: str, data_dir: Path, tmp_path: Path) -> Path:
    """Two ranks logged for a moment through the real agent, drained into the store."""
    ledgers = tmp_path / "ledgers"
    ledgers.mkdir()
    for rank in range(RANKS):
        run_rank(
            {
                "rank": rank,
                "world_size": RANKS,
                "run_id": RUN,
                "ledger_dir": str(ledgers),
                "redis_url": redis_url,
                "data_dir": str(data_dir),
                "steps_per_s": 2000,
                "seconds": 0.2,
                "finish_timeout": 30.0,
                "commit_wait": 0.0,
            }
        )
    P.drain(redis_url, data_dir)
    return ledgers


def test_a_clean_run_checks_clean(clean_run: Path, data_dir: Path) -> None:
    with Store(data_dir) as store:
        result = L.check(store, RUN, clean_run, RANKS)
    assert result.ok, result.problems
    assert result.points_checked > 0 and result.stored == result.points_checked
    assert (result.lost, result.duplicated, result.wrong, result.unexpected) == (0, 0, 0, 0)


def test_a_lost_and_a_duplicated_point_are_found(clean_run: Path, data_dir: Path) -> None:
    first = int(L.read_ledger(L.ledger_path(clean_run, 1))["step"][0])
    never_logged = int(L.read_ledger(L.ledger_path(clean_run, 0))["step"][-1]) + 1
    never_logged += never_logged % L.PROBE_EVERY == 0  # a step without a probe point: 2 points
    writer = L.LedgerWriter(L.ledger_path(clean_run, 0))  # the ledger claims a step the store never got
    writer.record(never_logged, 0.0, *L.values_of(0, never_logged))
    writer.close()
    with Store(data_dir) as store:
        a, _ = L.values_of(1, first)  # the same point once more, in a batch of its own
        store.ingest([make_batch(RUN, 0, [first], rank=1, inc="doctored", key="a", values=[a])])
        result = L.check(store, RUN, clean_run, RANKS)
    assert not result.ok
    assert (result.lost, result.duplicated, result.wrong, result.unexpected) == (2, 1, 0, 0)
    assert result.unreported_lost == 2
    lost = [p for p in result.problems if p.kind == "lost"]
    assert {(p.rank, p.key) for p in lost} == {(0, "a"), (0, "b")}
    assert all(p.example_steps == [never_logged] for p in lost)


def test_points_the_agent_reported_dropped_are_not_a_failure(clean_run: Path, data_dir: Path) -> None:
    rows = L.read_ledger(L.ledger_path(clean_run, 0))
    never_logged = int(rows["step"][-1]) + 1
    never_logged += never_logged % L.PROBE_EVERY == 0
    writer = L.LedgerWriter(L.ledger_path(clean_run, 0))
    writer.record(never_logged, 0.0, *L.values_of(0, never_logged))
    writer.close()
    report = L.report_path(clean_run, 0)
    report.write_text(json.dumps({**json.loads(report.read_text()), "dropped_points": 2}))
    with Store(data_dir) as store:
        assert L.check(store, RUN, clean_run, RANKS).ok
        report.write_text(json.dumps({**json.loads(report.read_text()), "dropped_points": 3}))
        overcounted = L.check(store, RUN, clean_run, RANKS)
    assert not overcounted.ok and overcounted.overcounted == 1
