"""What ``log_artifact`` / ``log_model`` / ``log_figure`` check and build at the call.

Everything that can be wrong with the input raises here, before anything is appended or queued:
the name (artifact_names), the file (exists, a regular file once symlinks are followed,
readable), the step, the framework, the meta (the parameter rules, and small enough to ride in
one batch). Figures are recognised by duck typing only (matplotlib's ``savefig``, PIL's
``save``) and rendered to a file at the call, so later drawing on the figure changes nothing.
"""

from __future__ import annotations

import mimetypes
import os
import stat
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from .artifact_names import validate_artifact_name
from .errors import InvalidValueError
from .values import coerce_step, flatten_params, validate_name
from .wire import MAX_FRAMEWORK_CHARS, ArtifactRecord, packed_artifact_bytes

MAX_META_BYTES = 64 * 1024  # a record rides whole in one batch (1 MiB): keep it small
DEFAULT_FIGURE_FORMAT = "png"
# extensions whose renderer's format name differs (PIL knows "JPEG", not "JPG")
_FORMAT_ALIASES = {"jpg": "jpeg", "tif": "tiff"}


@dataclass(frozen=True)
class PreparedFile:
    """A file checked at the call: where it really is and what ``os.stat`` said then."""

    path: str  # absolute, symlinks resolved
    size: int
    mtime_ns: int


def check_file(path: Any) -> PreparedFile:
    """``path`` if it names a readable regular file (a symlink to one is followed)."""
    try:
        text = os.fspath(path)
    except TypeError:
        raise InvalidValueError("path", path, "an artifact path is a str or os.PathLike") from None
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    if not text or "\x00" in text:
        raise InvalidValueError("path", path, "the path is empty or contains a NUL character")
    try:
        info = os.stat(text)
    except FileNotFoundError:
        raise InvalidValueError("path", path, "no such file") from None
    except OSError as e:
        raise InvalidValueError("path", path, f"cannot stat it ({e.strerror or e})") from None
    if stat.S_ISDIR(info.st_mode):
        raise InvalidValueError(
            "path", path, "is a directory; log its files one by one, or an archive of it (shutil.make_archive)"
        )
    if not stat.S_ISREG(info.st_mode):
        raise InvalidValueError("path", path, "is not a regular file (a device, FIFO or socket)")
    if not os.access(text, os.R_OK):
        raise InvalidValueError("path", path, "is not readable by this process")
    return PreparedFile(os.path.realpath(text), info.st_size, info.st_mtime_ns)


def default_name(path: Any) -> str:
    try:
        return os.path.basename(os.fsdecode(os.fspath(path)))
    except TypeError:
        return ""


def check_framework(framework: Any) -> str | None:
    if framework is None:
        return None
    name = validate_name(framework, "framework")
    if len(name) > MAX_FRAMEWORK_CHARS:
        raise InvalidValueError("framework", framework, f"at most {MAX_FRAMEWORK_CHARS} characters")
    return name


def check_meta(meta: Any) -> dict[str, Any]:
    if meta is None:
        return {}
    flat = flatten_params(meta)
    size = len(msgpack.packb(flat, use_bin_type=True))
    if size > MAX_META_BYTES:
        raise InvalidValueError("meta", f"<{len(flat)} keys>", f"is {size} bytes packed; the limit is {MAX_META_BYTES}")
    return flat


def media_type_of(name: str) -> str:
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed and guessed.isprintable() and "/" in guessed and len(guessed) <= 127:
        return guessed
    return "application/octet-stream"


def new_upload_id() -> str:
    return uuid.uuid4().hex


def build_record(
    upload: str,
    name: str,
    kind: str,
    size: int,
    step: Any,
    framework: str | None,
    meta: dict[str, Any],
    media_type: str | None = None,
) -> ArtifactRecord:
    record = ArtifactRecord(
        upload=upload,
        name=name,
        kind=kind,
        size=size,
        time=time.time(),
        step=None if step is None else coerce_step(step),
        framework=framework,
        media_type=media_type or media_type_of(name),
        meta=meta,
    )
    packed_artifact_bytes(record)  # anything the wire cannot carry raises here, not in the shipper
    return record


def figure_format(name: str) -> str:
    """The format a figure is rendered in: its name's extension, else PNG."""
    suffix = Path(name).suffix.lower().lstrip(".")
    return suffix or DEFAULT_FIGURE_FORMAT


def render_figure(figure: Any, name: str, folder: Path, upload: str) -> Path:
    """Render ``figure`` into ``folder`` (matplotlib ``savefig`` or PIL ``save``), at the call."""
    savefig, save = getattr(figure, "savefig", None), getattr(figure, "save", None)
    if not callable(savefig) and not callable(save):
        raise InvalidValueError(
            "figure", figure, "is not a figure: expected a matplotlib Figure (savefig) or a PIL Image (save)"
        )
    fmt = figure_format(name)
    render_as = _FORMAT_ALIASES.get(fmt, fmt)
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{upload}.{fmt}"
    try:
        if callable(savefig):
            savefig(str(target), format=render_as)
        else:
            assert callable(save)
            save(str(target), format=render_as)
        if not target.is_file():
            raise OSError(f"the renderer wrote no file at {target}")
    except Exception as e:
        target.unlink(missing_ok=True)
        raise InvalidValueError(
            "figure", figure, f"rendering it as {fmt!r} failed ({type(e).__name__}: {str(e)[:200]})"
        ) from e
    return target


def figure_media_type(name: str) -> str:
    guessed = media_type_of(name)
    if guessed == "application/octet-stream" and not Path(name).suffix:
        return "image/png"
    return guessed


__all__ = [
    "PreparedFile",
    "build_record",
    "check_file",
    "check_framework",
    "check_meta",
    "default_name",
    "figure_media_type",
    "new_upload_id",
    "render_figure",
    "validate_artifact_name",
]
