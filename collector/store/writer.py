"""The writer thread: the only owner of the store's write connection.

Callers hand it a function and wait for the result (the datasette ``execute_write_fn`` shape),
so every write is serialised on one connection and readers on their own connections never
block it. The writer, not the function, opens and ends the transaction: with
``transaction=True`` (the default) ``fn`` runs inside ``BEGIN IMMEDIATE``, which commits when it
returns and rolls back when it raises; the caller always sees ``fn``'s own error, never one
from the rollback.
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

    def execute(self, fn: Callable[[sqlite3.Connection], T], transaction: bool = True) -> T:
        """Run ``fn(connection)`` on the writer thread and return its result (or raise its error).

        With ``transaction``, ``fn`` runs in one ``BEGIN IMMEDIATE ... COMMIT``; ``fn`` must not
        begin or end transactions itself.
        """
        if not self._thread.is_alive():
            raise RuntimeError("the store is closed")
        future: Future[T] = Future()
        self._queue.put((fn, transaction, future))
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
            fn, transaction, future = item
            if not future.set_running_or_notify_cancel():
                continue
            try:
                future.set_result(run_in_transaction(conn, fn) if transaction else fn(conn))
            except BaseException as e:
                rollback_quietly(conn)
                future.set_exception(e)
        conn.close()


def run_in_transaction(conn: sqlite3.Connection, fn: Callable[[sqlite3.Connection], T]) -> T:
    """``fn(conn)`` inside ``BEGIN IMMEDIATE ... COMMIT``; on any error, roll back and re-raise it."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        result = fn(conn)
        conn.execute("COMMIT")
    except BaseException:
        rollback_quietly(conn)
        raise
    return result


def rollback_quietly(conn: sqlite3.Connection) -> None:
    """Roll back if a transaction is open; a failing rollback is logged, so it never hides the
    error that caused it (SQLite may already have rolled back on its own, e.g. after SQLITE_FULL)."""
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error as e:
        log.warning("rollback failed after an error (%s); the connection's transaction is left to SQLite", e)
