"""Whether a data dir can be written: `up` and `collector` refuse a read-only one up front.

A colleague's results or a read-only mount are for reading (`ls`, `show`); a collector there
would fail deep inside SQLite with a traceback, so the processes that write ask first.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from aquarium.agent.errors import AquariumError


class DataDirNotWritableError(AquariumError):
    """Raised by `aquarium up` and `aquarium collector` when the data dir cannot be written."""

    def __init__(self, data_dir: Path, why: str) -> None:
        self.data_dir, self.why = data_dir, why
        super().__init__(f"cannot store into {data_dir}: {why}; choose another --data-dir (or AQUARIUM_DATA_DIR)")


def unwritable_reason(data_dir: Path) -> str | None:
    """None if the store's files can be created under ``data_dir`` (creating it if needed), else why not."""
    if data_dir.exists():
        if not data_dir.is_dir():
            return "it is not a directory"
        try:
            with tempfile.TemporaryFile(dir=data_dir):
                pass
        except OSError as e:
            return f"it is not writable ({e.strerror or e})"
        return None
    parent = next((p for p in data_dir.resolve().parents if p.exists()), Path("/"))
    if not os.access(parent, os.W_OK | os.X_OK):
        return f"it cannot be created: {parent} is not writable"
    return None


def require_writable(data_dir: Path) -> None:
    if (why := unwritable_reason(data_dir)) is not None:
        raise DataDirNotWritableError(data_dir, why)
