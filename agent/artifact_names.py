"""Artifact names: relative POSIX paths that are safe to use as a path anywhere.

An artifact's name becomes a path when it is downloaded (`aquarium artifacts RUN --get`), exported
(MLflow, W&B, TensorBoard, the seed's ``artifacts/`` dir) or shown in the UI, so it is checked
once, at the call, by the same rules the collector applies again to what arrives: no absolute
paths, no ``..`` or ``.`` components, no backslashes, no NUL or control characters, no names that
Windows reserves, no components ending in a dot or a space.
"""

from __future__ import annotations

import re
from typing import Any

from .errors import InvalidNameError
from .values import encodes

MAX_ARTIFACT_NAME_LENGTH = 250  # characters, the whole path
MAX_COMPONENT_BYTES = 255  # what ext4, APFS and NTFS allow per path component
ARTIFACT_KINDS = ("file", "model", "figure")
_RESERVED = re.compile(r"^(con|prn|aux|nul|com[0-9]|lpt[0-9]|conin\$|conout\$)(\..*)?$", re.IGNORECASE)
_WHAT = "artifact name"


def artifact_name_problem(name: Any) -> str | None:
    """Why ``name`` cannot be an artifact name, or None if it can."""
    if type(name) is not str:
        return f"must be a str, not {type(name).__name__}"
    if not name:
        return "must not be empty"
    if len(name) > MAX_ARTIFACT_NAME_LENGTH:
        return f"is {len(name)} characters long; the limit is {MAX_ARTIFACT_NAME_LENGTH}"
    if not encodes(name):
        return "cannot be encoded as UTF-8"
    if "\x00" in name:
        return "contains a NUL character"
    if not name.isprintable():
        return "contains control or non-printable characters"
    if "\\" in name:
        return "contains a backslash; use '/' to separate directories"
    if name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return "is an absolute path; artifact names are relative"
    for part in name.split("/"):
        if part in ("", ".", ".."):
            return f"has an empty, '.' or '..' component ({part!r})"
        if len(part.encode("utf-8")) > MAX_COMPONENT_BYTES:
            return f"has a component longer than {MAX_COMPONENT_BYTES} bytes"
        if part.endswith((".", " ")) or part.startswith(" "):
            return f"has a component starting with a space or ending in a dot or a space ({part!r})"
        if _RESERVED.match(part):
            return f"uses a reserved device name ({part!r})"
    return None


def validate_artifact_name(name: Any) -> str:
    """Return ``name`` if it is a safe artifact name, else raise InvalidNameError."""
    problem = artifact_name_problem(name)
    if problem is not None:
        raise InvalidNameError(_WHAT, name, problem)
    return name  # type: ignore[no-any-return]
