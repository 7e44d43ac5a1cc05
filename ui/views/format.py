"""How the views write times and durations (local time, short units)."""

from __future__ import annotations

import math
from datetime import datetime

__all__ = ["duration", "when"]


def when(at: float | None) -> str:
    """A unix time as local ``YYYY-MM-DD HH:MM:SS``; a dash when there is none."""
    if at is None or not math.isfinite(at):
        return "—"
    return datetime.fromtimestamp(at).strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``0.4s``, ``42s``, ``3m 05s``, ``2h 07m``, ``3d 04h``; a dash when unknown."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return "—"
    if seconds < 10:
        return f"{seconds:.1f}s"
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    if s < 86400:
        return f"{s // 3600}h {s % 3600 // 60:02d}m"
    return f"{s // 86400}d {s % 86400 // 3600:02d}h"
