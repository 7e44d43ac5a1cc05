"""The Aquarium collector: consumes batch streams into the store and serves what it holds.

Exports load lazily, so the command line can explain a missing server dependency instead of
failing on import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .columnar import ColumnarFormatError
    from .compat import ExperimentManager
    from .consumer import Collector
    from .settings import CollectorSettings
    from .store import KeyNotFoundError, Store, Window, WindowError

__all__ = [
    "Collector",
    "CollectorSettings",
    "ColumnarFormatError",
    "ExperimentManager",
    "KeyNotFoundError",
    "Store",
    "Window",
    "WindowError",
]

_HOMES = {"Collector": ".consumer", "CollectorSettings": ".settings", "ExperimentManager": ".compat", "Store": ".store"}
_HOMES |= {
    "ColumnarFormatError": ".columnar",
    "KeyNotFoundError": ".store",
    "Window": ".store",
    "WindowError": ".store",
}


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home, __name__), name)
