"""Whose fault a failure is: one batch's (it goes to the dead letters, the rest goes on) or the
store's (nothing is dead-lettered; the same entries wait until the store writes again)."""

from __future__ import annotations

from aquarium.agent.errors import AquariumError

from .store import Store
from .store.writer import store_is_down


class StoreUnavailableError(AquariumError):
    """Raised when the store cannot write at all, as opposed to rejecting one batch: nothing is
    dead-lettered or acknowledged, and the same entries are retried once it writes again."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        super().__init__(f"the store cannot write: {reason_of(error)}")


def raise_if_store_down(store: Store, error: Exception) -> None:
    """Raise StoreUnavailableError unless ``error`` was the batch's fault.

    The probe is an empty transaction on the writer: it fails if the writer is gone or the
    database cannot be locked, and succeeds if only the batch was at fault.
    """
    if store_is_down(error):
        raise StoreUnavailableError(error) from error
    try:
        store.ingest([])
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
