"""Smoothing: the moving average and the debiased EMA, whole or fed in pieces as a live chart does."""

from __future__ import annotations

import numpy as np
import pytest

from aquarium.ui.smoothing import Smoother, Smoothing, ema, moving_average


def test_the_moving_average_is_trailing_and_shorter_at_the_start() -> None:
    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    assert moving_average(values, 3).tolist() == [1.0, 1.5, 2.0, 3.0, 4.0]
    assert moving_average(values, 1).tolist() == values.tolist()


def test_the_moving_average_skips_nans() -> None:
    out = moving_average(np.array([1.0, np.nan, 3.0]), 2)
    assert out.tolist() == [1.0, 1.0, 3.0]


def test_the_ema_is_debiased_from_its_first_point() -> None:
    values = np.array([2.0, 2.0, 2.0])
    assert np.allclose(ema(values, 0.9), 2.0)  # a constant stays constant: no pull towards zero
    # by hand: e1 = 0.5*0 + 0.5*1 = 0.5 -> /0.5 = 1; e2 = 0.25 + 0.5*3 = 1.75 -> /0.75
    assert np.allclose(ema(np.array([1.0, 3.0]), 0.5), [1.0, 1.75 / 0.75])


@pytest.mark.parametrize("smoothing", [Smoothing("ma", window=7), Smoothing("ema", weight=0.8), Smoothing()])
def test_feeding_in_pieces_equals_smoothing_the_whole(smoothing: Smoothing) -> None:
    values = np.random.default_rng(1).normal(size=200)
    whole = Smoother(smoothing).feed(values)
    piecewise = Smoother(smoothing)
    parts = [piecewise.feed(values[a:b]) for a, b in ((0, 1), (1, 5), (5, 120), (120, 200))]
    assert np.allclose(np.concatenate(parts), whole)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"kind": "median"}, "smoothing must be one of"),
        ({"kind": "ma", "window": 0}, "window must be at least 1"),
        ({"kind": "ema", "weight": 1.0}, "weight must be in"),
    ],
)
def test_bad_smoothing_options_are_refused(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Smoothing(**options)  # type: ignore[arg-type]
