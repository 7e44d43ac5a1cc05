"""Curve smoothing as the run view offers it: none, a trailing moving average, a debiased EMA.

Both smoothers also run incrementally (``Smoother.feed``): a chart that grows live smooths only
the new points, carrying the state of the ones before, and gets the values smoothing the whole
array at once would give.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

__all__ = ["SMOOTHINGS", "Smoother", "Smoothing", "ema", "moving_average"]

SMOOTHINGS = {"None": "none", "Moving average": "ma", "EMA (debiased)": "ema"}


@dataclass(frozen=True)
class Smoothing:
    kind: str = "none"  # one of SMOOTHINGS' values
    window: int = 10  # moving average: points in the window (the point and the window-1 before it)
    weight: float = 0.6  # EMA: weight of the past, in [0, 1)

    def __post_init__(self) -> None:
        if self.kind not in SMOOTHINGS.values():
            raise ValueError(f"smoothing must be one of {', '.join(SMOOTHINGS.values())}, not {self.kind!r}")
        if self.window < 1:
            raise ValueError(f"the moving average window must be at least 1, not {self.window}")
        if not 0.0 <= self.weight < 1.0:
            raise ValueError(f"the EMA weight must be in [0, 1), not {self.weight}")


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over up to ``window`` points (fewer at the start), NaNs skipped."""
    return Smoother(Smoothing("ma", window=window)).feed(values)


def ema(values: np.ndarray, weight: float) -> np.ndarray:
    """Exponential moving average with the zero-start bias removed (TensorBoard's smoothing):
    ``last = weight * last + (1 - weight) * x`` from 0, divided by ``1 - weight**n`` after the
    n-th finite point. Non-finite points pass through and leave the average alone."""
    return Smoother(Smoothing("ema", weight=weight)).feed(values)


class Smoother:
    """Smooths a series fed in pieces; the state is the tail (moving average) or the EMA so far."""

    def __init__(self, smoothing: Smoothing) -> None:
        self.smoothing = smoothing
        self._tail: deque[float] = deque(maxlen=max(smoothing.window - 1, 0) or None)
        self._ema = 0.0
        self._count = 0  # finite points the EMA has seen

    def feed(self, values: np.ndarray) -> np.ndarray:
        values = np.asarray(values, dtype=np.float64)
        kind = self.smoothing.kind
        if kind == "none":
            return values.copy()
        if kind == "ma":
            return self._moving_average(values)
        return self._ema_feed(values)

    def _moving_average(self, values: np.ndarray) -> np.ndarray:
        window = self.smoothing.window
        if window == 1:
            return values.copy()
        joined = np.concatenate([np.fromiter(self._tail, dtype=np.float64, count=len(self._tail)), values])
        finite = np.isfinite(joined)
        sums = np.concatenate([[0.0], np.cumsum(np.where(finite, joined, 0.0))])
        counts = np.concatenate([[0], np.cumsum(finite)])
        ends = np.arange(len(self._tail) + 1, len(joined) + 1)
        starts = np.maximum(ends - window, 0)
        n = counts[ends] - counts[starts]
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(n > 0, (sums[ends] - sums[starts]) / np.maximum(n, 1), np.nan)
        self._tail.extend(values[-(window - 1) :].tolist())
        return out

    def _ema_feed(self, values: np.ndarray) -> np.ndarray:
        weight = self.smoothing.weight
        out = np.empty(len(values))
        last = self._ema
        count = self._count
        for i, value in enumerate(values.tolist()):
            if value == value and abs(value) != float("inf"):  # finite: NaN and inf leave the state alone
                last = weight * last + (1.0 - weight) * value
                count += 1
                out[i] = last / (1.0 - weight**count)
            else:
                out[i] = value  # a gap in the raw curve is a gap in the smoothed one
        self._ema, self._count = last, count
        return out
