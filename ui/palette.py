"""The dashboard's colours, in one place so every view and figure agrees.

The seed's dark scheme (background #2b3e50/#1a252f, primary #375a7f, success #5cb85c, warning #f0ad4e,
danger #d9534f, info #5bc0de), plus the few derived colours a dark Bokeh figure needs (text, grid, a
categorical series palette that reads on the dark background, and a diverging palette for correlations).
"""

from __future__ import annotations

from typing import Final

BACKGROUND: Final = "#2b3e50"
"""The page and card background."""
BACKGROUND_DARK: Final = "#1a252f"
"""The header, plot areas and inset panels."""
PRIMARY: Final = "#375a7f"
SUCCESS: Final = "#5cb85c"
WARNING: Final = "#f0ad4e"
DANGER: Final = "#d9534f"
INFO: Final = "#5bc0de"

TEXT: Final = "#ebebeb"
"""Body text on either background."""
TEXT_MUTED: Final = "#a9b7c6"
"""Axis labels, captions, secondary text."""
GRID: Final = "#3c5064"
"""Grid lines and plot outlines: visible on BACKGROUND_DARK without competing with the data."""
HIGHLIGHT: Final = "#4e6f91"
"""A differing cell: the primary colour lifted enough to read on the background."""
SELECTED: Final = "#8a6d3b"
"""A selected (brushed) run's cells: the warning colour, darkened for white text."""

SERIES: Final[tuple[str, ...]] = (
    "#5bc0de",  # info
    "#f0ad4e",  # warning
    "#5cb85c",  # success
    "#d9534f",  # danger
    "#b48ead",
    "#e5c07b",
    "#56b6c2",
    "#ff8c69",
    "#98c379",
    "#c678dd",
)
"""Colours for one line per run/rank/metric, in order; light enough to read on the dark plot area."""

DIVERGING: Final[tuple[str, ...]] = (
    "#d9534f",
    "#e07a6f",
    "#e8a090",
    "#efc6b8",
    "#f2e6e0",
    "#c4dbe6",
    "#98c9dd",
    "#6fb5d4",
    "#5bc0de",
)
"""Negative (danger red) through neutral to positive (info blue), for correlations in [-1, 1]."""

SEQUENTIAL: Final[tuple[str, ...]] = (
    "#1a252f",
    "#1f3447",
    "#254560",
    "#2c5779",
    "#375a7f",
    "#3f7aa3",
    "#4a9cc4",
    "#5bc0de",
    "#a6e3f0",
)
"""Low (the dark background) to high (info blue, then near white), for normalised heatmaps."""

STATUS_COLOURS: Final[dict[str, str]] = {
    "running": INFO,
    "completed": SUCCESS,
    "failed": DANGER,
    "crashed": DANGER,
    "killed": DANGER,
    "interrupted": WARNING,
    "terminated": WARNING,
}
"""The badge colour for each run status; anything else uses PRIMARY."""


def series_colour(index: int) -> str:
    """The SERIES colour for the index-th line, cycling when there are more lines than colours."""
    return SERIES[index % len(SERIES)]


def status_colour(status: str) -> str:
    """The badge colour for a run status (PRIMARY for a status this palette does not know)."""
    return STATUS_COLOURS.get(status.lower(), PRIMARY)
