"""A training-curve figure for `aquarium demo`, drawn with the standard library.

The demo logs it with ``run.log_figure`` like a matplotlib figure (the agent duck-types
``save``/``savefig``), so the dashboard shows an inline figure without matplotlib installed.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

BACKGROUND = (0x1A, 0x25, 0x2F)
GRID = (0x34, 0x49, 0x5E)
LINE = (0x5B, 0xC0, 0xDE)


class CurveFigure:
    """``values`` as a line on a dark background; ``save(path, format="png")`` writes a PNG."""

    def __init__(self, values: Sequence[float], width: int = 480, height: int = 240) -> None:
        self.values, self.width, self.height = list(values), width, height

    def save(self, fp: Any, format: str | None = None) -> None:
        Path(fp).write_bytes(png(self.pixels(), self.width, self.height))

    def pixels(self) -> list[bytearray]:
        w, h, pad = self.width, self.height, 12
        rows = [bytearray(BACKGROUND * w) for _ in range(h)]
        for y in range(pad, h - pad + 1, (h - 2 * pad) // 4):
            rows[y][pad * 3 : (w - pad) * 3] = bytes(GRID * (w - 2 * pad))
        lo, hi = min(self.values), max(self.values)
        span = (hi - lo) or 1.0
        n = len(self.values)
        previous: int | None = None
        for x in range(pad, w - pad):
            value = self.values[min(n - 1, (x - pad) * n // (w - 2 * pad))]
            y = h - pad - 1 - int((value - lo) / span * (h - 2 * pad - 1))
            top, bottom = (y, y) if previous is None else (min(y, previous), max(y, previous))
            for yy in range(top, bottom + 1):
                for dy in (0, 1):  # two pixels thick
                    if 0 <= yy + dy < h:
                        rows[yy + dy][x * 3 : x * 3 + 3] = bytes(LINE)
            previous = y
        return rows


def png(rows: list[bytearray], width: int, height: int) -> bytes:
    """An 8-bit RGB PNG of ``rows`` (each ``width`` * 3 bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    raw = b"".join(b"\x00" + bytes(row) for row in rows)  # filter type 0 on every row
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
