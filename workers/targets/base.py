"""What every export target shares: the ``Target`` protocol, its errors, reading a run's series."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from aquarium.agent.errors import AquariumError

from ..progress import Progress
from ..report import Report

if TYPE_CHECKING:
    import numpy as np

    from aquarium.collector import Api


class ExportError(AquariumError):
    """Raised by a target when an export cannot complete; ``permanent`` ones are not retried."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        self.permanent = permanent
        super().__init__(message)


class Target(Protocol):
    """An export destination, registered by ``name`` in ``aquarium.workers.targets``."""

    name: str

    def export(self, api: Api, run_id: str, options: Mapping[str, Any], progress: Progress) -> Report: ...


@dataclass
class Series:
    """One metric of one rank, full resolution."""

    key: str
    rank: int
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray


def rank_key(key: str, rank: int) -> str:
    """Rank 0 keeps the key; rank k>0 becomes ``<key>/rank<k>`` (every target uses this convention)."""
    return key if rank == 0 else f"{key}/rank{rank}"


def total_points(run: Mapping[str, Any]) -> int:
    return sum(int(summary.get("count") or 0) for summary in (run.get("metrics") or {}).values())


def iter_series(api: Api, run: Mapping[str, Any]) -> Iterator[Series]:
    """Every (key, rank) series of the run with points, one at a time (one in memory)."""
    import numpy as np

    from aquarium.collector import KeyNotFoundError

    for key in api.keys(run["id"]):
        for rank in run.get("ranks") or [0]:
            try:
                w = api.series(run["id"], key, rank=rank)
            except KeyNotFoundError:
                continue
            times = w.times if w.times is not None else np.full(len(w.steps), np.nan)
            yield Series(key, rank, w.steps, w.values, times)


def required(options: Mapping[str, Any], name: str, target: str) -> Any:
    if not options.get(name):
        raise ExportError(f"the {target} export needs the {name!r} option", permanent=True)
    return options[name]


def start_time(run: Mapping[str, Any]) -> float | None:
    value = run.get("started_at") or run.get("created_at")
    return float(value) if value else None
