"""Durable files and renames: a file's bytes survive a crash once fsynced, and a file renamed
into a directory only once the directory's own entry is flushed too."""

from __future__ import annotations

import os
from pathlib import Path
from typing import BinaryIO


def fsync_file(f: BinaryIO) -> None:
    """Flush ``f``'s buffer and fsync it (one place, so a test can see which thread does it)."""
    f.flush()
    os.fsync(f.fileno())


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
