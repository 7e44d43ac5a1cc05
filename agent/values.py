"""Validation and coercion of what users log, done at the call site so mistakes raise there.

Whatever this module accepts can be packed into a batch: strings encode as UTF-8, steps fit in
int64, parameters nest at most MAX_PARAM_DEPTH levels and every single value fits in one batch.
Numbers from Python, numpy and torch are recognised by duck typing: the agent never imports
numpy or torch. NaN and +-Inf are numbers and are kept exactly.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import Any

from .errors import InvalidNameError, InvalidValueError

MIN_STEP, MAX_STEP = -(2**63), 2**63 - 1
MAX_NAME_LENGTH = 250
# Longest str a parameter or tag value may be: even at four UTF-8 bytes a character, the largest
# value (256 KiB) fits in one batch with room to spare.
MAX_TEXT_CHARS = 65536
MAX_KEYS_PER_CALL = 10_000
# Nested dicts and lists together; deeper structures are refused before they reach the wire.
MAX_PARAM_DEPTH = 16

_NOT_UTF8 = "cannot be encoded as UTF-8 (it holds a lone surrogate such as '\\ud800')"


def encodes(text: str) -> bool:
    """True if ``text`` can be encoded as UTF-8 (False for lone surrogates)."""
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def validate_name(name: Any, what: str = "metric name") -> str:
    """Return ``name`` if it can be stored and shown safely, else raise InvalidNameError."""
    if type(name) is not str:
        raise InvalidNameError(what, name, f"must be a str, not {type(name).__name__}")
    if not name or name.isspace():
        raise InvalidNameError(what, name, "must not be empty")
    if len(name) > MAX_NAME_LENGTH:
        raise InvalidNameError(what, name, f"is {len(name)} characters long; the limit is {MAX_NAME_LENGTH}")
    if not encodes(name):
        raise InvalidNameError(what, name, _NOT_UTF8)
    if not name.isprintable():
        raise InvalidNameError(what, name, "contains control or non-printable characters")
    return name


def validate_text(key: str, value: str, what: str) -> str:
    """Return a parameter or tag value if it encodes and is within MAX_TEXT_CHARS."""
    if len(value) > MAX_TEXT_CHARS:
        raise InvalidValueError(key, value, f"{what} values are limited to {MAX_TEXT_CHARS} characters")
    if not encodes(value):
        raise InvalidValueError(key, value, _NOT_UTF8)
    return value


def check_key_count(count: int, what: str) -> None:
    if count > MAX_KEYS_PER_CALL:
        raise InvalidValueError(f"<{what}>", f"<{count} keys>", f"at most {MAX_KEYS_PER_CALL} keys per call")


def validate_key_set(keys: tuple[Any, ...]) -> tuple[str, ...]:
    """The metric names of one ``log`` call, checked once per distinct key set."""
    check_key_count(len(keys), "metrics")
    for key in keys:
        validate_name(key, "metric name")
    return keys


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
    check_key_count(len(metrics), "metrics")
    return {key: to_float(key, value) for key, value in metrics.items()}


def coerce_step(step: Any) -> int:
    """Steps are int64; numpy/torch integer scalars are accepted, bools and floats are not."""
    if type(step) is int:
        value = step
    elif isinstance(step, (bool, float)):
        raise InvalidValueError("step", step, "the step must be an integer")
    elif hasattr(step, "__index__"):
        value = step.__index__()
    elif hasattr(step, "item"):
        return coerce_step(step.item())
    else:
        raise InvalidValueError("step", step, "the step must be an integer")
    if not MIN_STEP <= value <= MAX_STEP:
        raise InvalidValueError("step", step, "the step must fit in a signed 64-bit integer")
    return int(value)


def coerce_param(key: str, value: Any, depth: int = 1) -> Any:
    """Parameters keep their type when msgpack can carry it, else are stored as their str()."""
    if value is None or type(value) in (bool, float):
        return value
    if type(value) is int:
        return value if -(2**63) <= value < 2**64 else _as_text(key, value)
    if isinstance(value, str):
        return validate_text(key, value, "parameter")
    if isinstance(value, (list, tuple, Mapping)):
        if depth >= MAX_PARAM_DEPTH:
            raise InvalidValueError(key, value, f"parameters may not be nested more than {MAX_PARAM_DEPTH} levels")
        if len(value) > MAX_TEXT_CHARS // 3:  # every item takes at least 3 characters: "0, "
            raise InvalidValueError(key, value, f"parameter values are limited to {MAX_TEXT_CHARS} characters")
        if isinstance(value, Mapping):  # inside a list: kept as its text, after the same checks
            return _as_text(key, {k: coerce_param(key, v, depth + 1) for k, v in value.items()})
        items = [coerce_param(key, v, depth + 1) for v in value]
        if len(repr(items)) > MAX_TEXT_CHARS:
            raise InvalidValueError(key, value, f"parameter values are limited to {MAX_TEXT_CHARS} characters")
        return items
    if hasattr(value, "item") and _element_count(value) == 1:  # numpy and torch scalars
        return coerce_param(key, value.item(), depth)
    if isinstance(value, numbers.Real):
        return float(value)
    return _as_text(key, value)


def _element_count(value: Any) -> Any:
    numel = getattr(value, "numel", None)  # torch.Tensor
    return numel() if callable(numel) else getattr(value, "size", None)


def _as_text(key: str, value: Any) -> str:
    try:
        text = str(value)
    except Exception as e:  # a huge int (over 4300 digits), a __str__ that raises
        raise InvalidValueError(key, value, f"str() of it failed ({type(e).__name__}: {e})") from e
    return validate_text(key, text, "parameter")


def flatten_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """Nested dicts become dotted keys (``{"opt": {"lr": 1}}`` -> ``{"opt.lr": 1}``)."""
    if not isinstance(params, Mapping):
        raise InvalidValueError("<params>", params, "parameters are a mapping of name -> value")
    flat: dict[str, Any] = {}
    _flatten_into(flat, params, "", 1)
    return flat


def _flatten_into(flat: dict[str, Any], params: Mapping[Any, Any], prefix: str, depth: int) -> None:
    check_key_count(len(params), "params")
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            if depth >= MAX_PARAM_DEPTH:
                raise InvalidValueError(name, value, f"parameters may not be nested more than {MAX_PARAM_DEPTH} levels")
            _flatten_into(flat, value, name + ".", depth + 1)
        else:
            flat[validate_name(name, "parameter name")] = coerce_param(name, value, depth)
            check_key_count(len(flat), "params")


def coerce_tags(tags: Mapping[Any, Any] | Iterable[Any]) -> dict[str, str]:
    """Tags as ``{name: value}``; names alone get the value ""."""
    if isinstance(tags, str):
        tags = [tags]
    if not isinstance(tags, Mapping):
        tags = {str(name): "" for name in tags}
    check_key_count(len(tags), "tags")
    items: dict[str, str] = {}
    for key, value in tags.items():
        name = validate_name(str(key), "tag name")
        items[name] = validate_text(name, value if isinstance(value, str) else str(value), "tag")
    return items


def encodable_text(text: str, limit: int) -> str:
    """Text the process hands us (argv) may carry undecodable bytes as surrogates: escape them."""
    if not encodes(text):
        try:  # the bytes the OS gave, shown as \xff escapes
            text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
        except UnicodeEncodeError:  # surrogates that never were bytes
            text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text[:limit]
