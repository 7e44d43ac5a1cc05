"""Every error Aquarium raises derives from :class:`AquariumError`.

This module lives in the agent so that every part (agent, collector, workers, UI) can raise and
catch the same errors without server dependencies.
"""

from __future__ import annotations

import reprlib
from typing import Any

_short = reprlib.Repr()
_short.maxstring = _short.maxother = 80
_short.maxlevel = 3


def shown(value: Any) -> str:
    """A short repr for messages: bounded in length and depth (a 300-level structure is fine)."""
    try:
        return _short.repr(value)
    except Exception:  # a huge int (over 4300 digits), a __repr__ that raises
        return f"<{type(value).__name__}>"


class AquariumError(Exception):
    """Base class of every error Aquarium raises on purpose."""


class InvalidValueError(AquariumError, ValueError):
    """Raised at the call site when a logged value cannot be stored (not a finite-or-not number)."""

    def __init__(self, key: str, value: Any, reason: str) -> None:
        self.key, self.value, self.reason = key, value, reason
        super().__init__(f"{shown(key)}: cannot log {shown(value)} ({type(value).__name__}): {reason}")


class InvalidNameError(AquariumError, ValueError):
    """Raised at the call site when a metric, parameter, tag, run or experiment name is unusable."""

    def __init__(self, what: str, name: Any, reason: str) -> None:
        self.what, self.name, self.reason = what, name, reason
        super().__init__(f"invalid {what} {shown(name)}: {reason}")


class RunFinishedError(AquariumError, RuntimeError):
    """Raised when something is logged to a run after ``finish()``."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(f"run {run_id!r} is finished; start a new run with aquarium.agent.init()")


class NoActiveRunError(AquariumError, RuntimeError):
    """Raised by the module-level ``log()`` and friends when no run was started in this context."""

    def __init__(self) -> None:
        super().__init__("no active run: call aquarium.agent.init() first")


class WireFormatError(AquariumError, ValueError):
    """Raised when bytes are not a valid Aquarium batch (malformed, oversized, unknown version)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid batch: {reason}")


class SpoolError(AquariumError):
    """Raised when a spool file cannot be read at all (not a spool, unreadable header)."""

    def __init__(self, path: str, reason: str) -> None:
        self.path, self.reason = path, reason
        super().__init__(f"spool {path}: {reason}")


class ConfigError(AquariumError, ValueError):
    """Raised when a setting (argument or AQUARIUM_* variable) has an unusable value."""

    def __init__(self, name: str, value: Any, reason: str) -> None:
        self.name, self.value, self.reason = name, value, reason
        super().__init__(f"{name}={shown(value)}: {reason}")


class RunNotFoundError(AquariumError, KeyError):
    """Raised by store reads when no run has the given id."""

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        super().__init__(run_id)

    def __str__(self) -> str:
        return f"no run with id {self.run_id!r}"
