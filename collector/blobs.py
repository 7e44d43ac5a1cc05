"""Content-addressed artifact blobs under ``DATA/blobs``: written verified, read without surprises.

A blob is named by the sha256 of its bytes: ``DATA/blobs/sha256/ab/cd/abcd...``. An upload is
streamed into a temporary file under ``DATA/blobs/tmp`` (the same file system, so the final
rename is atomic) while it is hashed; only when every announced byte arrived and the digest is
the announced one is it renamed into place (or dropped, when those bytes are already stored:
the same file from 8 ranks is kept once). Anything else removes the temporary file, so a
failed upload leaves nothing behind. Blobs are opened with ``O_NOFOLLOW`` and only when the
resolved path lies under the blob directory: a symlink planted there is never served.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import stat
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from aquarium.agent.errors import AquariumError
from aquarium.agent.fsync import sync_dir

log = logging.getLogger("aquarium.collector.blobs")

SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}$")
STALE_TEMP_SECONDS = 24 * 3600  # a temporary file this old belongs to no live upload


class BlobError(AquariumError):
    """Base of the blob store's errors; ``code`` is what the HTTP API answers."""

    code = "blob_error"


class DigestMismatchError(BlobError):
    """Raised when an upload's bytes do not hash to the sha256 announced for them."""

    code = "sha256_mismatch"

    def __init__(self, expected: str, actual: str) -> None:
        self.expected, self.actual = expected, actual
        super().__init__(f"the body's sha256 is {actual}, not the announced {expected}: nothing was stored")


class TruncatedUploadError(BlobError):
    """Raised when an upload ends before its announced size (the client stopped or went away)."""

    code = "truncated"

    def __init__(self, expected: int, received: int) -> None:
        self.expected, self.received = expected, received
        super().__init__(f"the body ended after {received:,} of {expected:,} bytes: nothing was stored")


class OversizedUploadError(BlobError):
    """Raised when an upload sends more bytes than it announced."""

    code = "too_long"

    def __init__(self, expected: int) -> None:
        self.expected = expected
        super().__init__(f"the body is longer than the announced {expected:,} bytes: nothing was stored")


class BlobMissingError(BlobError):
    """Raised when no blob with that sha256 is stored."""

    code = "blob_missing"

    def __init__(self, sha256: str) -> None:
        self.sha256 = sha256
        super().__init__(f"no blob with sha256 {sha256} is stored")


class UnsafeBlobError(BlobError):
    """Raised when a blob's path is a symlink, not a regular file, or resolves outside the blob dir."""

    code = "unsafe_blob"

    def __init__(self, path: Path, why: str) -> None:
        self.path = path
        super().__init__(f"refusing to read {path}: {why}")


def check_sha256(value: object) -> str:
    """``value`` if it is 64 lowercase hex digits; ValueError otherwise."""
    if not (isinstance(value, str) and SHA256_PATTERN.fullmatch(value)):
        raise ValueError(f"not a sha256 (64 lowercase hex digits): {str(value)[:80]!r}")
    return value


class BlobStore:
    """The blobs under ``data_dir / "blobs"``."""

    def __init__(self, data_dir: str | os.PathLike[str]) -> None:
        self.root = Path(data_dir) / "blobs"
        self.temp_dir = self.root / "tmp"

    def path_of(self, sha256: str) -> Path:
        h = check_sha256(sha256)
        return self.root / "sha256" / h[:2] / h[2:4] / h

    def has(self, sha256: str, size: int) -> bool:
        """Whether a regular file of ``size`` bytes is stored under ``sha256`` (a symlink is not)."""
        try:
            st = os.lstat(self.path_of(sha256))
        except FileNotFoundError:
            return False
        return stat.S_ISREG(st.st_mode) and st.st_size == size

    def count(self) -> int:
        """How many blobs are stored (for tests and `doctor`)."""
        base = self.root / "sha256"
        return sum(1 for p in base.glob("*/*/*") if p.is_file()) if base.exists() else 0

    def open(self, sha256: str) -> BinaryIO:
        """The blob for reading. Raises BlobMissingError, or UnsafeBlobError when its path is a
        symlink (at any level) or anything but a regular file under the blob directory."""
        path = self.path_of(sha256)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0))
        except FileNotFoundError:
            raise BlobMissingError(sha256) from None
        except OSError as e:  # ELOOP: the last component is a symlink
            raise UnsafeBlobError(path, e.strerror or str(e)) from None
        try:
            opened = os.fstat(fd)
            if not stat.S_ISREG(opened.st_mode):
                raise UnsafeBlobError(path, "not a regular file")
            real = os.path.realpath(path)
            root = os.path.realpath(self.root)
            if not real.startswith(root + os.sep):
                raise UnsafeBlobError(path, f"it resolves to {real}, outside {root}")
            if not os.path.samestat(opened, os.stat(real)):
                raise UnsafeBlobError(path, "it changed while being opened")
        except BaseException:
            os.close(fd)
            raise
        return os.fdopen(fd, "rb")

    def writer(self, sha256: str, size: int) -> "BlobWriter":
        """A temporary file for an upload announced as ``size`` bytes hashing to ``sha256``."""
        return BlobWriter(self, check_sha256(sha256), size)

    def sweep_temp(self, older_than: float = STALE_TEMP_SECONDS) -> int:
        """Remove temporary files a crashed process left behind; returns how many."""
        if not self.temp_dir.exists():
            return 0
        removed, limit = 0, time.time() - older_than
        for path in self.temp_dir.iterdir():
            try:
                if path.lstat().st_mtime < limit:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed


class BlobWriter:
    """One upload into a temporary file: ``write`` chunks, then ``commit`` (verify, move into
    place) or ``discard``. Used as a context manager it discards unless committed."""

    def __init__(self, blobs: BlobStore, sha256: str, size: int) -> None:
        self.blobs, self.expected_sha256, self.expected_size = blobs, sha256, size
        blobs.temp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix="upload-", dir=blobs.temp_dir)
        self.temp_path = Path(name)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self.received = 0
        self.committed = False

    def write(self, chunk: bytes) -> None:
        assert self._file is not None, "written after commit or discard"
        if self.received + len(chunk) > self.expected_size:
            raise OversizedUploadError(self.expected_size)  # over HTTP, aiohttp stops at Content-Length
        self._hash.update(chunk)
        self._file.write(chunk)
        self.received += len(chunk)

    def commit(self) -> bool:
        """Verify and move the blob into place; True if these bytes were new, False if already
        stored. Raises TruncatedUploadError or DigestMismatchError (the temporary file is gone)."""
        assert self._file is not None, "committed twice, or after discard"
        try:
            if self.received != self.expected_size:
                raise TruncatedUploadError(self.expected_size, self.received)
            actual = self._hash.hexdigest()
            if actual != self.expected_sha256:
                raise DigestMismatchError(self.expected_sha256, actual)
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            self._file = None
            if self.blobs.has(actual, self.received):
                self.temp_path.unlink()
                self.committed = True
                return False
            target = self.blobs.path_of(actual)
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.temp_path, target)  # replaces a planted symlink too, never follows it
            sync_dir(target.parent)
            self.committed = True
            return True
        except BaseException:
            self.discard()
            raise

    def discard(self) -> None:
        """Close and remove the temporary file (nothing is stored)."""
        if self._file is not None:
            self._file.close()
            self._file = None
        if not self.committed:
            self.temp_path.unlink(missing_ok=True)

    def __enter__(self) -> "BlobWriter":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self.committed:
            self.discard()
