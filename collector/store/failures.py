"""Whose fault a failure is: one batch's (it goes to the dead letters, the rest goes on) or the
store's (nothing is dead-lettered; the same entries wait until the store writes again)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable

from aquarium.agent.errors import AquariumError
from aquarium.agent.wire import Batch

from .ingest import IngestResult

log = logging.getLogger("aquarium.collector.store.failures")

# what a store that cannot write at all raises (disk full, I/O error, locked, no memory): never a batch's fault
STORE_DOWN_ERRORS = (sqlite3.OperationalError, OSError, MemoryError)


def store_is_down(error: BaseException) -> bool:
    """True if ``error`` says the store cannot write, not that one batch was at fault. A damaged
    database file ("database disk image is malformed") raises a bare sqlite3.DatabaseError."""
    return isinstance(error, STORE_DOWN_ERRORS) or type(error) is sqlite3.DatabaseError


class StoreUnavailableError(AquariumError):
    """Raised when the store cannot write at all, as opposed to rejecting one batch: nothing is
    dead-lettered or acknowledged, and the same entries are retried once it writes again."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(f"the store cannot write: {reason_of(error)}")


Ingest = Callable[[list[Batch]], IngestResult]


def ingest_isolating(ingest: Ingest, batches: list[Batch]) -> tuple[IngestResult, list[tuple[Batch, Exception]]]:
    """``batches`` in one transaction; if that fails through a batch's fault, each alone.

    Returns what was stored and the batches refused, with why. Raises StoreUnavailableError when
    the store itself cannot write (then nothing is refused: the same batches are retried later).
    """
    if not batches:
        return IngestResult(), []
    try:
        return ingest(batches), []
    except Exception as e:
        _raise_if_store_down(ingest, e)
        if len(batches) == 1:
            return IngestResult(), [(batches[0], e)]
        log.warning("%d batches failed to store together (%s); storing them one by one", len(batches), reason_of(e))
    result, refused = IngestResult(), []
    for batch in batches:
        try:
            result.merge(ingest([batch]))
        except Exception as e:
            _raise_if_store_down(ingest, e)
            refused.append((batch, e))
    return result, refused


def _raise_if_store_down(ingest: Ingest, error: Exception) -> None:
    """Raise StoreUnavailableError unless ``error`` was the batch's fault.

    The probe is an empty transaction on the writer: it fails if the writer is gone or the
    database cannot be locked, and succeeds if only the batch was at fault.
    """
    if store_is_down(error):
        raise StoreUnavailableError(error) from error
    try:
        ingest([])
    except Exception as probe_error:
        raise StoreUnavailableError(error) from probe_error


def reason_of(error: BaseException) -> str:
    """A dead letter's reason: the error's own words, bounded (its text may quote the input)."""
    if hasattr(error, "reason") and isinstance(error.reason, str):
        return error.reason[:500]
    try:
        text = str(error)
    except Exception:  # a str() that itself fails (e.g. recursing) must not take the collector down
        text = "?"
    return f"{type(error).__name__}: {text[:500]}"
