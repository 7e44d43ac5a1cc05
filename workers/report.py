"""The kept/not-kept report of one export: the job's result, JSON-serialisable.

Every field of a run (points, params, tags, status, times, artifacts) is counted as kept or not kept, and
every conversion the target forced is a ``Note``: what happened, to how many, and a few examples.
A value the target could not take is never dropped silently: ``not_kept`` always comes with a
note saying why.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass
from typing import Any

FIELDS = ("points", "params", "tags", "status", "times", "artifacts")
MAX_EXAMPLES = 5


@dataclass
class Note:
    """One conversion or loss: ``kept`` False when the values it counts did not reach the target."""

    field: str
    what: str
    how: str
    count: int = 0
    kept: bool = True
    examples: list[str] = dataclasses.field(default_factory=list)


@dataclass
class Tally:
    kept: int = 0
    not_kept: int = 0


class Report:
    """Built by a target while it exports one run; ``to_dict()`` is what the job returns."""

    def __init__(self, target: str, run_id: str) -> None:
        self.target, self.run_id = target, run_id
        self.destination = ""
        self.fields: dict[str, Tally] = {name: Tally() for name in FIELDS}
        self.notes: list[Note] = []

    def keep(self, field_name: str, count: int = 1) -> None:
        self.fields[field_name].kept += count

    def note(
        self, field_name: str, what: str, how: str, count: int = 1, *, kept: bool = True, example: str | None = None
    ) -> None:
        """Count ``count`` values converted (``kept``) or lost (not ``kept``) for one reason; the
        same (field, what, kept) accumulates into one note."""
        if count <= 0:
            return
        if not kept:
            self.fields[field_name].not_kept += count
        for existing in self.notes:
            if (existing.field, existing.what, existing.kept) == (field_name, what, kept):
                existing.count += count
                break
        else:
            existing = Note(field_name, what, how, count, kept)
            self.notes.append(existing)
        if example is not None and len(existing.examples) < MAX_EXAMPLES:
            existing.examples.append(example)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "run": self.run_id,
            "destination": self.destination,
            "fields": {name: asdict(tally) for name, tally in self.fields.items()},
            "notes": [asdict(note) for note in self.notes],
        }
