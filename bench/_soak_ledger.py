"""The soak's ledgers and the check of the store against them (Jepsen ``set-full`` style).

Each rank appends, after every ``log()`` that returned, one row per step to its own ledger
file: the step, the wall time of the call and the value of every key. Its FinishReport goes
next to it as JSON. The check reads each series back with ``Store.read_series`` and lists what
is lost, duplicated, wrong or unexpected. It passes when nothing is duplicated, wrong or
unexpected and, for every rank, the points lost are exactly the points the agent reported
dropped (accepted = stored + reported dropped; a count too high is a failure too).

Standard library at the top: the ranks import this module; numpy only inside the check.
"""

from __future__ import annotations

import json
import struct
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

KEYS = ("a", "b")
PROBE_KEY = "probe"  # logged every PROBE_EVERY steps: a short series the latency poller reads
PROBE_EVERY = 50
ROW = struct.Struct("<qddd")  # step, wall time of the call, value of "a", value of "b"


def values_of(rank: int, step: int) -> tuple[float, float]:
    """Values that tell rank and step apart, exactly representable."""
    return float(step + 10_000_000 * rank), -0.5 - step - 10_000_000 * rank


def points_of(step: int) -> int:
    return len(KEYS) + (step % PROBE_EVERY == 0)


class LedgerWriter:
    """Append-only ledger of one rank; ``flush()`` after each burst so a crash keeps what was logged."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = open(path, "ab")
        self._rows: list[bytes] = []

    def record(self, step: int, at: float, a: float, b: float) -> None:
        self._rows.append(ROW.pack(step, at, a, b))

    def flush(self) -> None:
        self._file.write(b"".join(self._rows))
        self._file.flush()
        self._rows.clear()

    def close(self) -> None:
        self.flush()
        self._file.close()


def ledger_path(directory: Path, rank: int) -> Path:
    return directory / f"ledger-{rank}.bin"


def report_path(directory: Path, rank: int) -> Path:
    return directory / f"report-{rank}.json"


def read_ledger(path: Path) -> Any:
    """The rows as a numpy structured array (fields step, at, a, b)."""
    import numpy as np

    dtype = np.dtype([("step", "<i8"), ("at", "<f8"), ("a", "<f8"), ("b", "<f8")])
    raw = path.read_bytes()
    return np.frombuffer(raw[: len(raw) - len(raw) % ROW.size], dtype=dtype)


@dataclass
class SeriesProblem:
    rank: int
    key: str
    kind: str  # lost, duplicated, wrong, unexpected
    count: int
    example_steps: list[int]


@dataclass
class LedgerCheck:
    points_checked: int = 0
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    wrong: int = 0
    unexpected: int = 0
    reported_dropped: int = 0
    reported_unconfirmed: int = 0  # handed to Redis, not saved at finish: stored unless Redis lost them
    unconfirmed_lost: int = 0  # of those, how many Redis did lose
    unreported_lost: int = 0  # lost beyond what the agent reported dropped or unconfirmed
    overcounted: int = 0  # reported dropped although stored
    seq_gaps: int = 0
    problems: list[SeriesProblem] = field(default_factory=list)
    lost_at: list[float] = field(default_factory=list)  # wall times of the lost points' log() calls

    @property
    def ok(self) -> bool:
        return not (self.duplicated or self.wrong or self.unexpected or self.unreported_lost or self.overcounted)

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["ok"] = self.ok
        out["problems"] = [asdict(p) for p in self.problems[:20]]
        del out["lost_at"]
        return out


def check(store: Any, run_id: str, directory: Path, ranks: int) -> LedgerCheck:
    """Compare every rank's ledger (and reported drops) in ``directory`` with the store."""
    import numpy as np

    from aquarium.agent import RunNotFoundError

    result = LedgerCheck()
    try:
        run = store.get_run(run_id)
    except RunNotFoundError:  # nothing of the run arrived
        run = {"metrics": {}, "incarnations": []}
    result.seq_gaps = sum(int(inc["missing"]) for inc in run["incarnations"] if inc["missing"] > 0)
    expected_by_key: dict[str, int] = {}
    distinct_by_key: dict[str, int] = {}
    for rank in range(ranks):
        rows = read_ledger(ledger_path(directory, rank))
        report = json.loads(report_path(directory, rank).read_text()) if report_path(directory, rank).exists() else {}
        dropped = int(report.get("dropped_points", 0))
        unconfirmed = int(report.get("unconfirmed_points", 0))
        result.reported_dropped += dropped
        result.reported_unconfirmed += unconfirmed
        probe = rows[rows["step"] % PROBE_EVERY == 0]
        lost_here = 0
        for key, steps, values, at in (
            ("a", rows["step"], rows["a"], rows["at"]),
            ("b", rows["step"], rows["b"], rows["at"]),
            (PROBE_KEY, probe["step"], probe["a"], probe["at"]),
        ):
            result.points_checked += len(steps)
            expected_by_key[key] = expected_by_key.get(key, 0) + len(steps)
            series = store.read_series(run_id, key, rank) if key in run["metrics"] else None
            got_steps = np.asarray(series.steps if series is not None else [], dtype=np.int64)
            got_values = np.asarray(series.values if series is not None else [], dtype=np.float64)
            unique_steps, first = np.unique(got_steps, return_index=True)
            distinct_by_key[key] = distinct_by_key.get(key, 0) + len(unique_steps)
            result.stored += len(unique_steps)
            _note(result, rank, key, "duplicated", _repeated(got_steps))
            present = np.isin(steps, unique_steps)
            lost_steps = steps[~present]
            lost_here += len(lost_steps)
            _note(result, rank, key, "lost", lost_steps, at[~present])
            _note(result, rank, key, "unexpected", np.setdiff1d(unique_steps, steps))
            stored_values = got_values[first][np.searchsorted(unique_steps, steps[present])]
            want = values[present]
            differs = (stored_values != want) & ~(np.isnan(stored_values) & np.isnan(want))
            _note(result, rank, key, "wrong", steps[present][differs])
        result.unreported_lost += max(0, lost_here - dropped - unconfirmed)
        result.unconfirmed_lost += min(unconfirmed, max(0, lost_here - dropped))
        result.overcounted += max(0, dropped - lost_here)
    for key, summary in run["metrics"].items():  # the summaries count each stored point once
        extra = int(summary["count"]) - distinct_by_key.get(key, 0)
        if extra > 0 and not any(p.key == key and p.kind == "duplicated" for p in result.problems):
            result.duplicated += extra
            result.problems.append(SeriesProblem(-1, key, "duplicated", extra, []))
    return result


def _repeated(steps: Any) -> Any:
    import numpy as np

    if len(steps) == 0:
        return steps
    ordered = np.sort(steps)
    return ordered[1:][ordered[1:] == ordered[:-1]]


def _note(result: LedgerCheck, rank: int, key: str, kind: str, steps: Any, at: Any = None) -> None:
    if len(steps) == 0:
        return
    setattr(result, kind, getattr(result, kind) + len(steps))
    result.problems.append(SeriesProblem(rank, key, kind, len(steps), [int(s) for s in steps[:5]]))
    if at is not None:
        result.lost_at.extend(at.tolist())
