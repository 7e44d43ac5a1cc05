"""Validation and coercion of what users log, done at the call site so mistakes raise there.

Numbers from Python, numpy and torch are recognised by duck typing: the agent never imports
numpy or torch. NaN and +-Inf are numbers and are kept exactly.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Any

from .errors import InvalidNameError, InvalidValueError

MAX_NAME_LENGTH = 250
MAX_PARAM_CHARS = 65536
MAX_KEYS_PER_CALL = 10_000


def validate_name(name: Any, what: str = "metric name") -> str:
    """Return ``name`` if it can be stored and shown safely, else raise InvalidNameError."""
    if type(name) is not str:
        raise InvalidNameError(what, name, f"must be a str, not {type(name).__name__}")
    if not name or name.isspace():
        raise InvalidNameError(what, name, "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(what, name, f"is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if not name.isprintable():
        raise InvalidNameError(what, name, "contains control or non-printable characters")
    return name


def to_float(key: str, value: Any) -> float:
    """Coerce one logged value to float: Python, numpy and torch scalars; raise for anything else."""
    kind = type(value)
    if kind is float:
        return float(value)
    if kind is bool or kind is int:
        return _int_to_float(key, value)
    if value is None:
        raise InvalidValueError(key, value, "None is not a number; skip the key instead")
    if isinstance(value, (str, bytes, bytearray)):
        raise InvalidValueError(key, value, "strings are not metrics; log them as parameters or tags")
    if isinstance(value, (list, tuple, dict, set, frozenset)):
        raise InvalidValueError(key, value, "a metric is one number; log each element under its own key")
    numel = getattr(value, "numel", None)  # torch.Tensor
    if numel is not None and callable(numel) and hasattr(value, "item"):
        if numel() != 1:
            raise InvalidValueError(key, value, f"a tensor with {numel()} elements is not a scalar")
        return to_float(key, value.item())
    size = getattr(value, "size", None)  # numpy scalars and arrays, jax arrays
    if isinstance(size, int) and hasattr(value, "item"):
        if size != 1:
            raise InvalidValueError(key, value, f"an array with {size} elements is not a scalar")
        return to_float(key, value.item())
    if isinstance(value, numbers.Real):  # Decimal is not Real; Fraction is
        return _int_to_float(key, value) if isinstance(value, numbers.Integral) else float(value)
    raise InvalidValueError(key, value, "not a number")


def _int_to_float(key: str, value: Any) -> float:
    try:
        return float(value)
    except OverflowError as e:
        raise InvalidValueError(key, value, "integer too large for a float64") from e


def coerce_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """A copy of ``metrics`` with every value a float; raises naming the first bad key."""
    if not isinstance(metrics, Mapping):
        raise InvalidValueError("<metrics>", metrics, "log() takes a mapping of name -> number")
    if len(metrics) > MAX_KEYS_PER_CALL:
        raise InvalidValueError("<metrics>", f"<{len(metrics)} keys>", f"at most {MAX_KEYS_PER_CALL} keys per call")
    return {key: to_float(key, value) for key, value in metrics.items()}


def coerce_step(step: Any) -> int:
    """Steps are integers; numpy/torch integer scalars are accepted, bools and floats are not."""
    if type(step) is int:
        return step
    if isinstance(step, bool) or isinstance(step, float):
        raise InvalidValueError("step", step, "the step must be an integer")
    index = getattr(step, "__index__", None)
    if index is None:
        item = getattr(step, "item", None)
        if item is not None:
            return coerce_step(item())
        raise InvalidValueError("step", step, "the step must be an integer")
    value = index()
    if not -(2**63) <= value < 2**63:
        raise InvalidValueError("step", step, "the step must fit in a signed 64-bit integer")
    return int(value)


def coerce_param(key: str, value: Any) -> Any:
    """Parameters keep their type when msgpack can carry it, else are stored as their str()."""
    if value is None or type(value) in (bool, int, float):
        if type(value) is int and not -(2**63) <= value < 2**64:
            return str(value)
        return value
    if isinstance(value, str):
        if len(value) > MAX_PARAM_CHARS:
            raise InvalidValueError(key, value, f"parameter values are limited to {MAX_PARAM_CHARS} characters")
        return value
    if isinstance(value, (list, tuple)):
        items = [coerce_param(key, v) for v in value]
        if len(repr(items)) > MAX_PARAM_CHARS:
            raise InvalidValueError(key, value, f"parameter values are limited to {MAX_PARAM_CHARS} characters")
        return items
    if hasattr(value, "item") and getattr(value, "size", getattr(value, "numel", lambda: 1)) in (1,):
        return coerce_param(key, value.item())
    if isinstance(value, numbers.Real):
        return float(value)
    return coerce_param(key, str(value))


def flatten_params(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts become dotted keys (``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``)."""
    if not isinstance(params, Mapping):
        raise InvalidValueError("<params>", params, "parameters are a mapping of name -> value")
    flat: dict[str, Any] = {}
    for key, value in params.items():
        if not isinstance(key, str):
            key = str(key)
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(flatten_params(value, prefix=name + "."))
        else:
            flat[validate_name(name, "parameter name")] = coerce_param(name, value)
    return flat
