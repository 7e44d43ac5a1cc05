"""The columnar codec: windows as msgpack columns, bit-exact both ways, malformed input rejected;
and the JSON form, with NaN and +-Inf as null."""

from __future__ import annotations

import json
import math
from typing import Any

import msgpack
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from aquarium.collector import ColumnarFormatError, Window
from aquarium.collector.columnar import CONTENT_TYPE, decode_window, encode_window, window_to_json

QUIET_NAN_WITH_PAYLOAD = np.array([0x7FF8_0000_DEAD_BEEF], np.int64).view(np.float64)[0]
NEGATIVE_NAN = np.array([-0x0008_0000_0000_0000], np.int64).view(np.float64)[0]  # sign bit set
ODD = [math.nan, QUIET_NAN_WITH_PAYLOAD, NEGATIVE_NAN, math.inf, -math.inf, -0.0, 5e-324, 1.5]


def f8(values: list[float]) -> np.ndarray:
    return np.array(values, np.float64)


def rank_window(n: int = 4, values: np.ndarray | None = None) -> Window:
    steps = np.arange(n, dtype=np.int64) * 10
    vals = np.linspace(0.0, 1.0, n) if values is None else values
    return Window("r1", "loss", 2, None, steps, vals, 1.7e9 + np.arange(n) * 0.25, None, None, n * 3)


def all_window(values: np.ndarray) -> Window:
    n = len(values)
    steps = np.arange(n, dtype=np.int64) - 3
    return Window("r1", "acc", None, "all", steps, values, None, values[::-1].copy(), values * 2, n)


def bits(array: np.ndarray | None) -> list[int]:
    assert array is not None
    return array.view(np.int64).tolist()


def assert_same(a: Window, b: Window) -> None:
    assert (a.run, a.key, a.rank, a.agg, a.total) == (b.run, b.key, b.rank, b.agg, b.total)
    assert a.steps.dtype == b.steps.dtype == np.int64 and a.steps.tolist() == b.steps.tolist()
    for name in ("values", "times", "min", "max"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            assert y.dtype == np.float64 and bits(x) == bits(y), name


@pytest.mark.parametrize(
    "window",
    [
        rank_window(),
        rank_window(len(ODD), f8(ODD)),
        rank_window(0),
        all_window(f8(ODD)),
        all_window(f8([])),
        Window("r", "k", None, "mean", np.array([1, 2**62], np.int64), f8([math.nan, 1.0]), None, None, None, 2),
        Window("r", "k/é ünïcode", None, "max", np.array([-(2**63)], np.int64), f8([-math.inf]), None, None, None, 9),
    ],
    ids=["rank", "rank-odd-floats", "rank-empty", "all-odd-floats", "all-empty", "mean", "max-unicode"],
)
def test_round_trip_is_bit_exact(window: Window) -> None:
    decoded = decode_window(encode_window(window))
    assert_same(decoded, window)


def test_the_binary_form_is_a_map_of_raw_little_endian_columns() -> None:
    window = rank_window(3, f8([1.0, math.nan, -math.inf]))
    raw = msgpack.unpackb(encode_window(window))
    assert CONTENT_TYPE == "application/x-aquarium-columns"
    assert raw["v"] == 1 and (raw["run"], raw["key"], raw["rank"], raw["agg"], raw["total"], raw["n"]) == (
        "r1",
        "loss",
        2,
        None,
        9,
        3,
    )
    assert raw["steps"] == np.array([0, 10, 20], "<i8").tobytes()
    assert raw["values"] == f8([1.0, math.nan, -math.inf]).astype("<f8").tobytes()
    assert len(raw["times"]) == 24 and raw["min"] is None and raw["max"] is None


def test_decoding_views_the_buffer_without_copying_points() -> None:
    decoded = decode_window(encode_window(rank_window(1000)))
    assert not decoded.values.flags.writeable and not decoded.values.flags.owndata  # np.frombuffer views


@given(
    pattern=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=50),
    rank=st.none() | st.integers(0, 2**31),
    total_extra=st.integers(0, 10**6),
)
def test_any_bit_patterns_round_trip(pattern: list[int], rank: int | None, total_extra: int) -> None:
    values = np.array(pattern, np.int64).view(np.float64)
    steps = np.array(sorted(pattern), np.int64)
    n = len(pattern)
    if rank is None:
        window = Window("r", "k", None, "all", steps, values, None, values[::-1].copy(), values.copy(), n + total_extra)
    else:
        window = Window("r", "k", rank, None, steps, values, values.copy(), None, None, n + total_extra)
    assert_same(decode_window(encode_window(window)), window)


def good() -> dict[str, Any]:
    return dict(msgpack.unpackb(encode_window(rank_window())))


def changed(**fields: Any) -> bytes:
    data = good()
    for name, value in fields.items():
        if value is KeyError:
            del data[name]
        else:
            data[name] = value
    return bytes(msgpack.packb(data))


MALFORMED = {
    "empty": b"",
    "not msgpack": b"\xc1\xc1\xc1",
    "not a map": msgpack.packb([1, 2, 3]),
    "trailing bytes": encode_window(rank_window()) + b"\x00",
    "version 2": changed(v=2),
    "version missing": changed(v=KeyError),
    "version true": changed(v=True),
    "version float": changed(v=1.0),
    "no steps": changed(steps=KeyError),
    "steps not bin": changed(steps=[0, 10, 20, 30]),
    "values too short": changed(values=b"\x00" * 24),
    "steps not whole points": changed(steps=b"\x00" * 31),
    "n disagrees": changed(n=5),
    "n above total": changed(n=4, total=3),
    "total negative": changed(total=-1),
    "total a string": changed(total="12"),
    "times on an aggregate window": changed(rank=None, agg="mean"),
    "times of the wrong length": changed(times=b"\x00" * 8),
    "min on a rank window": changed(min=b"\x00" * 32),
    "rank and agg": changed(agg="mean"),
    "neither rank nor agg": changed(rank=None),
    "rank negative": changed(rank=-1),
    "rank a bool": changed(rank=False),
    "unknown agg": changed(rank=None, agg="median", times=None),
    "all without a band": changed(rank=None, agg="all", times=None),
    "run not a string": changed(run=b"r1"),
    "unknown field": changed(extra=1),
    "integer map keys": msgpack.packb({1: 2}),
}


@pytest.mark.parametrize("data", list(MALFORMED.values()), ids=list(MALFORMED))
def test_malformed_input_is_rejected(data: bytes) -> None:
    with pytest.raises(ColumnarFormatError, match="^invalid columnar window: ") as caught:
        decode_window(data)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("cut", [1, 2, 10, 40, 100, -1])
def test_truncated_input_is_rejected(cut: int) -> None:
    data = encode_window(rank_window(8))
    with pytest.raises(ColumnarFormatError):
        decode_window(data[:cut])


def test_json_of_a_rank_window_has_times_and_nulls_for_non_finite() -> None:
    window = rank_window(4, f8([1.0, math.nan, math.inf, -math.inf]))
    out = window_to_json(window)
    assert list(out) == ["run", "key", "rank", "total", "steps", "values", "times"]
    assert out["rank"] == 2 and out["total"] == 12 and out["steps"] == [0, 10, 20, 30]
    assert out["values"] == [1.0, None, None, None] and out["times"][1] == 1.7e9 + 0.25
    json.dumps(out, allow_nan=False)  # plain JSON: no NaN/Infinity tokens
    assert window.values[1] != window.values[1]  # the window itself is untouched


def test_json_of_aggregates() -> None:
    out = window_to_json(all_window(f8([2.0, math.nan, -0.0])))
    assert list(out) == ["run", "key", "agg", "total", "steps", "values", "min", "max"]
    assert out["agg"] == "all" and out["steps"] == [-3, -2, -1]
    assert out["values"] == [2.0, None, -0.0] and out["min"] == [-0.0, None, 2.0] and out["max"] == [4.0, None, -0.0]
    mean = Window("r", "k", None, "mean", np.array([5], np.int64), f8([0.5]), None, None, None, 1)
    assert window_to_json(mean) == {"run": "r", "key": "k", "agg": "mean", "total": 1, "steps": [5], "values": [0.5]}
    assert all(type(v) is float for v in window_to_json(rank_window(5))["values"])  # Python floats, not numpy


def test_json_of_an_empty_window() -> None:
    out = window_to_json(rank_window(0))
    assert out["steps"] == [] and out["values"] == [] and out["times"] == []


def test_a_rank_window_may_leave_its_times_out() -> None:
    """A history needs no log times (a third of the bytes): ``?times=0`` leaves them out."""
    import dataclasses

    window = decode_window(encode_window(dataclasses.replace(rank_window(), times=None)))
    assert window.times is None and window.rank is not None and len(window.steps) == len(window.values)
