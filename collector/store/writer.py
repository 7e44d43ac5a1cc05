"""The writer thread: the only owner of the store's write connection.

Callers hand it a function and wait for the result (the datasette ``execute_write_fn`` shape),
so every write is serialised on one connection and readers on their own connections never
block it.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

from .schema import connect, migrate

log = logging.getLogger("aquarium.collector.store.writer")

T = TypeVar("T")
_STOP = object()


class Writer:
    def __init__(self, path: Path) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._ready: Future[None] = Future()
        self._thread = threading.Thread(target=self._run, args=(path,), name="aquarium-store-writer", daemon=True)
        self._thread.start()
        self._ready.result()  # migration errors surface here

    def execute(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer thread and return its result (or raise its error)."""
        if not self._thread.is_alive():
            raise RuntimeError("the store is closed")
        future: Future[T] = Future()
        self._queue.put((fn, future))
        return future.result()

    def close(self) -> None:
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _run(self, path: Path) -> None:
        try:
            conn = connect(path, writer=True)
            migrate(conn)
        except BaseException as e:
            self._ready.set_exception(e)
            return
        self._ready.set_result(None)
        while True:
            item = self._queue.get()
            if item is _STOP:
                break
            fn, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(fn(conn))
            except BaseException as e:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                future.set_exception(e)
        conn.close()
