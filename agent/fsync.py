"""Durable renames: a file renamed into a directory survives a crash only once the directory's
own entry is flushed too."""

from __future__ import annotations

import os
from pathlib import Path


def sync_dir(folder: Path) -> None:
    """fsync ``folder`` (best effort: some filesystems refuse to open or sync a directory)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
