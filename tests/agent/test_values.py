"""Bad input raises at the call site, naming the key; numbers of every kind are accepted."""

from __future__ import annotations

import math
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

import aquarium.agent as aq
from aquarium.agent.errors import InvalidNameError, InvalidValueError, RunFinishedError
from aquarium.agent.values import coerce_step, flatten_params, to_float, validate_name
from aquarium.collector import Store


class FakeNumpyScalar:
    """Duck-typed like a numpy scalar: .item() and .size, without importing numpy."""

    size = 1

    def __init__(self, value: object) -> None:
        self.value = value

    def item(self) -> object:
        return self.value


class FakeTensor:
    def __init__(self, values: list[float]) -> None:
        self.values = values

    def numel(self) -> int:
        return len(self.values)

    def item(self) -> float:
        if len(self.values) != 1:
            raise RuntimeError("a Tensor with 2 elements cannot be converted to Scalar")
        return self.values[0]


@pytest.mark.parametrize(
    "value, expected",
    [
        (1.5, 1.5),
        (3, 3.0),
        (True, 1.0),
        (False, 0.0),
        (Fraction(1, 4), 0.25),
        (FakeNumpyScalar(2.5), 2.5),
        (FakeNumpyScalar(7), 7.0),
        (FakeTensor([0.125]), 0.125),
    ],
)
def test_numbers_of_every_kind_become_floats(value: object, expected: float) -> None:
    result = to_float("k", value)
    assert type(result) is float and result == expected


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_nan_and_inf_are_kept(value: float) -> None:
    result = to_float("k", value)
    assert (math.isnan(result) and math.isnan(value)) or result == value


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("0.5", "strings are not metrics"),
        (None, "None"),
        ([1.0, 2.0], "one number"),
        ({"a": 1}, "one number"),
        (FakeTensor([1.0, 2.0]), "2 elements"),
        (FakeNumpyScalar("text"), "strings"),
        (Decimal("1.5"), "not a number"),
        (object(), "not a number"),
        (10**400, "too large"),
    ],
)
def test_non_numbers_raise_naming_the_key(value: object, fragment: str) -> None:
    with pytest.raises(InvalidValueError) as info:
        to_float("train/loss", value)
    assert info.value.key == "train/loss"
    assert "train/loss" in str(info.value) and fragment in str(info.value)


@pytest.mark.parametrize(
    "name, fragment",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 251, "251 characters"),
        ("a\nb", "control"),
        ("tab\there", "control"),
        ("nul\x00", "control"),
        (42, "must be a str"),
    ],
)
def test_bad_names_raise(name: object, fragment: str) -> None:
    with pytest.raises(InvalidNameError) as info:
        validate_name(name)
    assert fragment in str(info.value)


def test_names_up_to_the_limit_and_unicode_and_html_are_fine() -> None:
    for name in ("x" * 250, "accuracy/top-1", "损失", "<b>loss</b>", "a b"):
        assert validate_name(name) == name


def test_steps_must_be_integers() -> None:
    assert coerce_step(FakeNumpyScalar(5)) == 5
    for bad in (1.0, True, "3", None):
        with pytest.raises(InvalidValueError):
            coerce_step(bad)


def test_params_flatten_and_keep_types() -> None:
    flat = flatten_params(
        {
            "lr": 1e-3,
            "opt": {"name": "adam", "betas": (0.9, 0.99)},
            "layers": [64, 64],
            "path": Path("/data"),
            "none": None,
        }
    )
    assert flat == {
        "lr": 1e-3,
        "opt.name": "adam",
        "opt.betas": [0.9, 0.99],
        "layers": [64, 64],
        "path": "/data",
        "none": None,
    }
    with pytest.raises(InvalidValueError):
        flatten_params({"huge": "x" * 70000})


def test_run_rejects_bad_calls_and_stores_the_good_ones(data_dir: Path) -> None:
    run = aq.init(experiment="values", mode="offline")
    run.log({"loss": 0.5, "n": 3, "flag": True, "np": FakeNumpyScalar(0.25)}, step=0)
    with pytest.raises(InvalidValueError, match="'acc'"):
        run.log({"loss": 0.4, "acc": "high"}, step=1)
    with pytest.raises(InvalidNameError):
        run.log({"bad\nname": 1.0}, step=1)
    with pytest.raises(InvalidValueError):
        run.log([("loss", 1.0)])  # type: ignore[arg-type]
    run.log({"loss": math.nan, "inf": math.inf, "ninf": -math.inf}, step=2)
    run.finish()
    with pytest.raises(RunFinishedError):
        run.log({"loss": 1.0})
    with Store(data_dir) as store:
        store.ingest_spool()
        assert store.read_series(run.id, "loss").steps.tolist() == [0, 2]  # the failed call stored nothing
        loss = store.read_series(run.id, "loss").values
        assert loss[0] == 0.5 and math.isnan(loss[1])
        assert store.read_series(run.id, "n").values.tolist() == [3.0]
        assert store.read_series(run.id, "flag").values.tolist() == [1.0]
        assert store.read_series(run.id, "np").values.tolist() == [0.25]
        assert store.read_series(run.id, "inf").values.tolist() == [math.inf]
        assert store.read_series(run.id, "ninf").values.tolist() == [-math.inf]


def test_caller_mutating_its_dict_after_log_changes_nothing(data_dir: Path) -> None:
    run = aq.init(experiment="values", mode="offline")
    metrics = {"loss": 1.0}
    for step in range(3):
        metrics["loss"] = float(step)
        run.log(metrics, step=step)
    metrics["loss"] = 99.0
    run.finish()
    with Store(data_dir) as store:
        store.ingest_spool()
        assert store.read_series(run.id, "loss").values.tolist() == [0.0, 1.0, 2.0]
