"""The Panel/Bokeh dashboard.

``MetricsVisualizerComponent`` (the seed's visualiser) is imported on first use, so importing
``aquarium.ui`` loads neither Panel nor Bokeh.
"""

from __future__ import annotations

from typing import Any

__all__ = ["MetricsVisualizerComponent"]


def __getattr__(name: str) -> Any:
    if name == "MetricsVisualizerComponent":
        from .compat import MetricsVisualizerComponent

        return MetricsVisualizerComponent
    raise AttributeError(f"module 'aquarium.ui' has no attribute {name!r}")
