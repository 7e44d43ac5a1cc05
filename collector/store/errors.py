"""Errors of reading windows of series from the store (``window``)."""

from __future__ import annotations

from typing import Any

from aquarium.agent.errors import AquariumError, shown


class KeyNotFoundError(AquariumError, KeyError):
    """Raised by window reads when a run has no metric ``key``, or no series of it for ``rank``."""

    def __init__(self, run_id: str, key: str, rank: int | None = None) -> None:
        self.run_id, self.key, self.rank = run_id, key, rank
        where = "" if rank is None else f" for rank {rank}"
        super().__init__(f"run {run_id!r} has no metric {shown(key)}{where}")

    def __str__(self) -> str:  # KeyError's own __str__ would quote the message
        return str(self.args[0])


class WindowError(AquariumError, ValueError):
    """Raised when a window is asked for with unusable arguments (the HTTP API answers 400)."""

    def __init__(self, argument: str, value: Any, reason: str) -> None:
        self.argument, self.value, self.reason = argument, value, reason
        super().__init__(f"{argument}={shown(value)}: {reason}")
