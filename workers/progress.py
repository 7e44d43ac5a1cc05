"""Progress of a running export: points done of points total, in the RQ job's ``meta``.

``save_meta()`` is a Redis round trip, so it is throttled (at most ``MAX_SAVES_PER_SECOND``);
the last update is always saved by ``finish()``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

MAX_SAVES_PER_SECOND = 2.0


class Progress(Protocol):
    def __call__(self, done: int, total: int, phase: str) -> None: ...


def no_progress(done: int, total: int, phase: str) -> None:
    """For exports nobody watches."""


class MetaProgress:
    """Writes ``{"done", "total", "phase"}`` into ``job.meta``, throttled."""

    def __init__(self, job: Any, clock: Callable[[], float] = time.monotonic) -> None:
        self.job = job
        self._clock = clock
        self._last = -1e9
        self._dirty = False

    def __call__(self, done: int, total: int, phase: str) -> None:
        self.job.meta.update({"done": done, "total": total, "phase": phase})
        now = self._clock()
        if now - self._last >= 1.0 / MAX_SAVES_PER_SECOND:
            self.job.save_meta()
            self._last, self._dirty = now, False
        else:
            self._dirty = True

    def finish(self) -> None:
        if self._dirty:
            self.job.save_meta()
            self._dirty = False
