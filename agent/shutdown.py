"""Finishing open runs when the process ends: at exit, after an uncaught exception, on SIGTERM.

Nothing is installed at import. The first run started installs an atexit hook (it finishes the
open runs, then closes the artifact uploader) and an excepthook (an uncaught KeyboardInterrupt
ends runs as ``interrupted``, any other exception as ``failed``).
The first run started in the main thread also looks at SIGTERM: if its handler is the default,
ours finishes the open runs as ``terminated`` within their finish timeout, restores the default
and raises the signal again, so the process still dies by SIGTERM. If someone else installed a
handler, ours is chained before it: it marks the runs ``terminated`` and flushes them, then calls
theirs, which decides whether the process ends (the runs stay open in case it does not).
A handler that is ignored, or set outside Python, is left alone.
"""

from __future__ import annotations

import atexit
import logging
import signal
import sys
import threading
import time
import weakref
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any

from . import uploader
from .statuses import FAILED, INTERRUPTED, TERMINATED

if TYPE_CHECKING:
    from .run import Run

logger = logging.getLogger("aquarium.agent.shutdown")


class ProcessEnd:
    """Process-wide: the open runs, why the program is ending, and the hooks that finish runs."""

    def __init__(self) -> None:
        self.open_runs: weakref.WeakSet[Run] = weakref.WeakSet()
        self.exception_status: str | None = None  # set by the excepthook
        self.sigterm_received = False
        self._lock = threading.Lock()
        self._exit_hooks = False
        self._sigterm_considered = False
        self._theirs: Callable[[int, FrameType | None], Any] | None = None  # chained to; None: the default

    def track(self, run: Run) -> None:
        self.install()
        self.open_runs.add(run)

    def untrack(self, run: Run) -> None:
        self.open_runs.discard(run)

    @property
    def ending_status(self) -> str | None:
        """The status open runs end with at exit; None lets each run decide (``completed``)."""
        return TERMINATED if self.sigterm_received else self.exception_status

    def install(self) -> None:
        with self._lock:
            if not self._exit_hooks:
                self._exit_hooks = True
                previous = sys.excepthook

                def excepthook(kind: type[BaseException], value: BaseException, tb: TracebackType | None) -> None:
                    self.exception_status = INTERRUPTED if issubclass(kind, KeyboardInterrupt) else FAILED
                    previous(kind, value, tb)

                sys.excepthook = excepthook
                atexit.register(self.finish_all_at_exit)
            if not self._sigterm_considered and threading.current_thread() is threading.main_thread():
                self._sigterm_considered = True
                current = signal.getsignal(signal.SIGTERM)
                if current is signal.SIG_DFL or callable(current):
                    self._theirs = current if callable(current) else None
                    signal.signal(signal.SIGTERM, self.on_sigterm)

    def finish_all_at_exit(self) -> None:
        status = self.ending_status
        for run in list(self.open_runs):
            try:
                run.finish(status)
            except Exception:  # never turn exit into a traceback
                logger.exception("run %s: finishing at exit failed", run.id)
        # Then the uploader: every record written, its threads stopped, its lock files gone (what
        # is not uploaded is `aquarium sync`'s now).
        if not uploader.close_shared():
            logger.warning("the artifact uploader did not stop at exit; its records are kept for `aquarium sync`")

    def on_sigterm(self, signum: int, frame: FrameType | None) -> None:
        self.sigterm_received = True
        runs = list(self.open_runs)
        deadline = time.monotonic() + max((run.settings.finish_timeout for run in runs), default=0.0)
        theirs = self._theirs
        for run in runs:
            left = max(0.0, deadline - time.monotonic())
            if run.finished and theirs is not None:
                continue
            try:
                if theirs is None:
                    run.finish(TERMINATED, timeout=left)
                else:  # their handler decides whether the process ends: keep the run open
                    run.set_status(TERMINATED)
                    run.flush(timeout=left)
            except Exception:  # the signal must still do what it would have done
                logger.exception("run %s: ending on SIGTERM failed", run.id)
        if theirs is not None:
            theirs(signum, frame)
            return
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.raise_signal(signal.SIGTERM)


process_end = ProcessEnd()
