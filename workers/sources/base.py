"""What every import source shares: the ``Source`` protocol, the neutral run it reads, its errors.

A source reads one run of another tracker into an ``ImportedRun`` (points in their logging
order, params, tags, status, times); ``convert.to_batches`` turns that into agent wire batches.
The Aquarium run id is derived from the source (``import_run_id``), so importing the same run
twice writes the same batch ids and the store keeps one copy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from aquarium.agent.errors import AquariumError

from ..progress import Progress
from ..report import Report

INCARNATION = "import"  # every imported run has one incarnation: its batch ids never change


class SourceError(AquariumError):
    """Raised when a source cannot be read; ``permanent`` ones (bad files, unknown runs) are not retried."""

    def __init__(self, message: str, *, permanent: bool = True) -> None:
        self.permanent = permanent
        super().__init__(message)


@dataclass
class ImportedSeries:
    """One metric of one run as the source logged it (repeated steps included, in logging order)."""

    key: str
    steps: list[int] = field(default_factory=list)
    values: list[float] = field(default_factory=list)
    times: list[float] = field(default_factory=list)  # unix seconds; NaN where the source has none


@dataclass
class ImportedRun:
    source: str  # the source's registered name
    source_id: str  # what identifies the run within that kind of source (a path, an MLflow run id)
    location: str  # where it was read from, for the report
    name: str | None = None
    experiment: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, Any] = field(default_factory=dict)
    status: str | None = None
    started_at: float | None = None
    ended_at: float | None = None
    series: list[ImportedSeries] = field(default_factory=list)
    origin: dict[str, Any] = field(default_factory=dict)  # source-specific ids kept in the run's metadata

    @property
    def run_id(self) -> str:
        return import_run_id(self.source, self.source_id)


def import_run_id(source: str, source_id: str) -> str:
    """``import-<24 hex>``: the same source run always maps to the same Aquarium run."""
    return "import-" + hashlib.sha256(f"{source}\0{source_id}".encode()).hexdigest()[:24]


class Source(Protocol):
    """A tracker Aquarium imports from, registered by ``name`` in ``aquarium.workers.sources``."""

    name: str

    def list_runs(self, location: str, options: Mapping[str, Any]) -> list[str]:
        """References of the runs at ``location`` (each one import job); SourceError if none can be read."""
        ...

    def read_run(
        self, location: str, ref: str, options: Mapping[str, Any], report: Report, progress: Progress
    ) -> ImportedRun:
        """One run, whole; what the source holds that Aquarium cannot keep goes into ``report``."""
        ...
