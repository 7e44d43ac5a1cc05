"""The Panel/Bokeh dashboard: runs, a run's live curves, comparisons, visualizations, exports.

``launch_aquarium(base_dir=..., port=8053)`` serves it (the seed's entry point; also
``aquarium ui`` and ``python -m aquarium.ui``). ``MetricsVisualizerComponent`` is the seed's
visualiser and ``ExperimentManager`` its manager, whose comparisons are plots. Exports load on
first use, so importing ``aquarium.ui`` loads neither Panel nor Bokeh.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import Dashboard, create_app
    from .compat import ExperimentManager, MetricsVisualizerComponent
    from .server import UiServer, UiSettings, dashboard_for, launch_aquarium

_HOMES = {
    "Dashboard": ".app",
    "create_app": ".app",
    "ExperimentManager": ".compat",
    "MetricsVisualizerComponent": ".compat",
    "UiServer": ".server",
    "UiSettings": ".server",
    "dashboard_for": ".server",
    "launch_aquarium": ".server",
}

__all__ = [
    "Dashboard",
    "ExperimentManager",
    "MetricsVisualizerComponent",
    "UiServer",
    "UiSettings",
    "create_app",
    "dashboard_for",
    "launch_aquarium",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(home, __name__), name)
