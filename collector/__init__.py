"""The Aquarium collector: consumes batch streams into the store and serves what it holds.

Exports load lazily, so the command line can explain a missing server dependency instead of
failing on import.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .client import Api, ApiError
    from .columnar import ColumnarFormatError
    from .compat import ExperimentManager
    from .consumer import Collector
    from .query import QueryError, parse_filter, parse_sort
    from .settings import CollectorSettings
    from .store import KeyNotFoundError, RunPage, Store, Window, WindowError

_HOMES = {
    "Api": ".client",
    "ApiError": ".client",
    "Collector": ".consumer",
    "CollectorSettings": ".settings",
    "ColumnarFormatError": ".columnar",
    "ExperimentManager": ".compat",
    "KeyNotFoundError": ".store",
    "QueryError": ".query",
    "RunPage": ".store",
    "Store": ".store",
    "Window": ".store",
    "WindowError": ".store",
    "parse_filter": ".query",
    "parse_sort": ".query",
}

__all__ = [
    "Api",
    "ApiError",
    "Collector",
    "CollectorSettings",
    "ColumnarFormatError",
    "ExperimentManager",
    "KeyNotFoundError",
    "QueryError",
    "RunPage",
    "Store",
    "Window",
    "WindowError",
    "parse_filter",
    "parse_sort",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home, __name__), name)
