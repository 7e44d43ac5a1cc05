"""Windows on the wire: a compact binary form and the JSON form.

The binary form (content type ``application/x-aquarium-columns``) is one msgpack map::

    {"v": 1, "run": str, "key": str, "rank": int | None, "agg": str | None, "total": int,
     "n": int, "steps": bin, "values": bin, "times": bin | None, "min": bin | None, "max": bin | None}

Exactly one of ``rank`` and ``agg`` is set. Each array is its raw little-endian bytes (``<i8``
steps, ``<f8`` the rest), ``n`` points each: NaN and +-Inf are kept bit-exact, and decoding is
``np.frombuffer`` with no Python object per point. ``times`` is present for a rank window only,
``min``/``max`` for ``agg="all"`` only. A reader rejects a map whose ``v`` it does not know.

JSON cannot carry NaN or +-Inf, so ``window_to_json`` writes them as ``null``; clients that must
tell NaN from Inf ask for the binary form.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np

from aquarium.agent.errors import AquariumError

from .store.window import AGGREGATES, Window

CONTENT_TYPE = "application/x-aquarium-columns"
VERSION = 1

_I8 = np.dtype("<i8")
_F8 = np.dtype("<f8")
_FIELDS = frozenset({"v", "run", "key", "rank", "agg", "total", "n", "steps", "values", "times", "min", "max"})


class ColumnarFormatError(AquariumError, ValueError):
    """Raised by ``decode_window`` when bytes are not a window in the columnar format."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(f"invalid columnar window: {reason}")


def _bin(array: np.ndarray | None, dtype: np.dtype[Any]) -> bytes | None:
    return None if array is None else np.ascontiguousarray(array, dtype=dtype).tobytes()


def encode_window(window: Window) -> bytes:
    """The window as one msgpack map (see the module docstring)."""
    data = {
        "v": VERSION,
        "run": window.run,
        "key": window.key,
        "rank": None if window.rank is None else int(window.rank),
        "agg": window.agg,
        "total": int(window.total),
        "n": len(window.steps),
        "steps": _bin(window.steps, _I8),
        "values": _bin(window.values, _F8),
        "times": _bin(window.times, _F8),
        "min": _bin(window.min, _F8),
        "max": _bin(window.max, _F8),
    }
    return bytes(msgpack.packb(data, use_bin_type=True))


def _count(data: dict[str, Any], name: str) -> int:
    value = data[name]
    if type(value) is not int or value < 0:
        raise ColumnarFormatError(f"{name!r} must be a count, not {value!r}")
    return value


def _array(data: dict[str, Any], name: str, dtype: np.dtype[Any], n: int) -> np.ndarray:
    blob = data.get(name)
    if not isinstance(blob, bytes):
        raise ColumnarFormatError(f"{name!r} must be bin, not {type(blob).__name__}")
    if len(blob) != n * dtype.itemsize:
        raise ColumnarFormatError(f"{name!r} holds {len(blob)} bytes, not {n} points of {dtype.itemsize}")
    return np.frombuffer(blob, dtype=dtype)


def _optional(data: dict[str, Any], name: str, n: int, expected: bool, required: bool = True) -> np.ndarray | None:
    if expected and (required or data.get(name) is not None):
        return _array(data, name, _F8, n)
    if data.get(name) is not None:
        raise ColumnarFormatError(f"{name!r} is not expected in this window")
    return None


def decode_window(data: bytes) -> Window:
    """The window ``encode_window`` made; raises ColumnarFormatError for anything else.

    The arrays are read-only views of ``data``'s buffer.
    """
    try:
        obj = msgpack.unpackb(data, raw=False, use_list=False, strict_map_key=True)
    except (ValueError, TypeError, msgpack.UnpackException) as e:  # ExtraData, FormatError, StackError are ValueErrors
        raise ColumnarFormatError(f"not msgpack ({e})") from e
    if not isinstance(obj, dict):
        raise ColumnarFormatError(f"expected a map, got {type(obj).__name__}")
    version = obj.get("v")
    if type(version) is not int or version != VERSION:
        raise ColumnarFormatError(f"unknown version {version!r} (this reader knows {VERSION})")
    missing = {"run", "key", "total", "n", "steps", "values"} - obj.keys()
    if missing:
        raise ColumnarFormatError(f"missing {', '.join(sorted(missing))}")
    unknown = obj.keys() - _FIELDS
    if unknown:
        raise ColumnarFormatError(f"unknown fields {', '.join(sorted(map(repr, unknown)))}")
    run, key, rank, agg = obj["run"], obj["key"], obj.get("rank"), obj.get("agg")
    if not isinstance(run, str) or not isinstance(key, str):
        raise ColumnarFormatError("'run' and 'key' must be strings")
    total, n = _count(obj, "total"), _count(obj, "n")
    if n > total:
        raise ColumnarFormatError(f"{n} points but a total of {total}")
    if (rank is None) == (agg is None):
        raise ColumnarFormatError("exactly one of 'rank' and 'agg' must be set")
    if rank is not None and (type(rank) is not int or rank < 0):
        raise ColumnarFormatError(f"'rank' must be a non-negative integer, not {rank!r}")
    if agg is not None and agg not in AGGREGATES:
        raise ColumnarFormatError(f"'agg' must be one of {', '.join(AGGREGATES)}, not {agg!r}")
    return Window(
        run,
        key,
        rank,
        agg,
        _array(obj, "steps", _I8, n),
        _array(obj, "values", _F8, n),
        _optional(obj, "times", n, rank is not None, required=False),  # a client may not want them
        _optional(obj, "min", n, agg == "all"),
        _optional(obj, "max", n, agg == "all"),
        total,
    )


def _floats(array: np.ndarray) -> list[float | None]:
    out: list[float | None] = array.tolist()
    finite = np.isfinite(array)
    if not finite.all():
        for i in np.flatnonzero(~finite).tolist():
            out[i] = None
    return out


def window_to_json(window: Window) -> dict[str, Any]:
    """The JSON form: ``run``, ``key``, ``rank`` or ``agg``, ``total``, ``steps``, ``values``,
    plus ``times`` (rank windows) or ``min``/``max`` (``agg="all"``); NaN and +-Inf are null."""
    out: dict[str, Any] = {"run": window.run, "key": window.key}
    if window.rank is not None:
        out["rank"] = int(window.rank)
    else:
        out["agg"] = window.agg
    out["total"] = int(window.total)
    out["steps"] = window.steps.tolist()
    out["values"] = _floats(window.values)
    for name in ("times", "min", "max"):
        array = getattr(window, name)
        if array is not None:
            out[name] = _floats(array)
    return out
