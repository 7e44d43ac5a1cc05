"""Properties of the wire format (Hypothesis): every batch round-trips, and no byte string makes
the decoder raise anything but WireFormatError, however it nests, whatever length it claims and
whatever type sits in whichever field."""

from __future__ import annotations

import json
import struct
from typing import Any

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aquarium.agent.errors import WireFormatError
from aquarium.agent.wire import (
    MAX_INCARNATION_CHARS,
    MAX_INT64,
    MAX_STATUS_CHARS,
    Batch,
    BatchId,
    MetricChunk,
    pack_batch,
    unpack_batch,
)

QUICK = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

printable = st.characters(categories=["L", "N", "P", "S"])  # str.isprintable() holds for all of these


def names(max_size: int) -> st.SearchStrategy[str]:
    return st.text(printable, min_size=1, max_size=max_size)


run_ids = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", fullmatch=True)
int64s = st.integers(-(2**63), 2**63 - 1)
float64s = st.floats(allow_nan=True, allow_infinity=True)


@st.composite
def chunks(draw: st.DrawFn) -> MetricChunk:
    n = draw(st.integers(1, 16))
    steps = draw(st.lists(int64s, min_size=n, max_size=n))
    values = draw(st.lists(float64s, min_size=n, max_size=n))
    times = draw(st.lists(float64s, min_size=n, max_size=n))
    return MetricChunk(
        draw(names(250)), struct.pack(f"<{n}q", *steps), struct.pack(f"<{n}d", *values), struct.pack(f"<{n}d", *times)
    )


# what params, tags and run metadata carry: JSON-like values, nested (lists, string-keyed maps)
plain_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
value_maps = st.dictionaries(st.text(max_size=20), plain_values, max_size=5)

batches = st.builds(
    Batch,
    id=st.builds(
        BatchId,
        run=run_ids,
        rank=st.integers(0, MAX_INT64),
        incarnation=names(MAX_INCARNATION_CHARS),
        seq=st.integers(0, MAX_INT64),
    ),
    metrics=st.lists(chunks(), max_size=4),
    params=value_maps,
    tags=st.dictionaries(st.text(max_size=20), st.text(max_size=20), max_size=4),
    status=st.lists(st.tuples(names(MAX_STATUS_CHARS), st.floats(allow_nan=False, allow_infinity=False)), max_size=3),
    meta=value_maps,
)


@QUICK
@given(batches)
def test_every_batch_round_trips(batch: Batch) -> None:
    assert unpack_batch(pack_batch(batch)) == batch


# -- anything at all -----------------------------------------------------------------------------
# Hostile bodies are assembled as msgpack bytes, so nesting can go past what msgpack (or Python)
# would build or pack as objects.
def packed(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def array_of(items: list[bytes]) -> bytes:
    return bytes([0x90 | len(items)]) + b"".join(items)  # fixarray: at most 15 items


def map_of(pairs: list[tuple[bytes, bytes]]) -> bytes:
    return bytes([0x80 | len(pairs)]) + b"".join(k + v for k, v in pairs)  # fixmap: at most 15 pairs


any_scalar = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats()
    | st.text(max_size=300)
    | st.binary(max_size=64)
    | st.builds(msgpack.ExtType, st.integers(0, 127), st.binary(max_size=8))
)
map_keys = st.text(max_size=4) | st.binary(max_size=4) | st.integers(-(2**63), 2**63 - 1)
any_value = st.recursive(
    any_scalar,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(map_keys, inner, max_size=4),
    max_leaves=16,
).map(packed)
nested = st.builds(
    lambda leaf, depth, as_map: (b"\x81\xa1k" if as_map else b"\x91") * depth + leaf,
    any_value,
    st.integers(0, 1100),  # past msgpack's own stack limit (1024)
    st.booleans(),
)
field_values = any_value | nested


def maybe(valid: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """A valid-looking value for one slot, or anything at all."""
    return valid.map(packed) | field_values


ids = st.tuples(maybe(run_ids), maybe(st.integers(0, 3)), maybe(names(8)), maybe(st.integers(0, 9))).map(list)
columns = maybe(st.binary(max_size=32).filter(lambda b: len(b) % 8 == 0))
chunk_values = st.tuples(maybe(names(20)), columns, columns, columns).map(list).map(array_of) | field_values
status_values = st.tuples(maybe(names(8)), maybe(st.floats())).map(list).map(array_of) | field_values


def value_map() -> st.SearchStrategy[bytes]:
    return st.lists(st.tuples(st.text(max_size=8).map(packed), field_values), max_size=3).map(map_of) | field_values


known_fields = st.fixed_dictionaries(
    {},
    optional={
        "v": maybe(st.just(1)),
        "id": ids.map(array_of) | field_values,
        "m": st.lists(chunk_values, max_size=3).map(array_of) | field_values,
        "p": value_map(),
        "t": value_map(),
        "s": st.lists(status_values, max_size=2).map(array_of) | field_values,
        "r": value_map(),
        "x": field_values,  # an unknown field
    },
).map(lambda fields: map_of([(packed(name), value) for name, value in fields.items()]))

# a str/bin/array/map header (and the width of its length) that claims up to 4 GiB, then too little
LENGTH_HEADERS = [(0xD9, 1), (0xDA, 2), (0xDB, 4), (0xC4, 1), (0xC5, 2), (0xC6, 4), (0xDC, 2), (0xDD, 4), (0xDF, 4)]
lying_lengths = st.builds(
    lambda header, length, tail: bytes([header[0]]) + (length % 256 ** header[1]).to_bytes(header[1], "big") + tail,
    st.sampled_from(LENGTH_HEADERS),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=64),
)


def decodes_or_raises_wire_format_error(data: bytes) -> None:
    try:
        batch = unpack_batch(data)
    except WireFormatError as e:
        assert len(str(e)) < 400  # a reason, not a dump of the input
        return
    # what decodes, the store can serialise: no RecursionError, no unserialisable key
    json.dumps(batch.params, default=str)
    json.dumps(batch.meta, default=str)
    [str(v) for v in batch.tags.values()]


@QUICK
@given(st.binary(max_size=4096))
def test_any_byte_string_decodes_or_raises_wire_format_error(data: bytes) -> None:
    decodes_or_raises_wire_format_error(data)


@QUICK
@given(known_fields)
def test_any_value_in_any_known_field_decodes_or_raises_wire_format_error(body: bytes) -> None:
    decodes_or_raises_wire_format_error(body)


@QUICK
@given(known_fields, st.integers(0, 200))
def test_truncated_batches_raise_wire_format_error(body: bytes, cut: int) -> None:
    decodes_or_raises_wire_format_error(body[: max(0, len(body) - cut - 1)])


@QUICK
@given(lying_lengths)
def test_length_headers_claiming_gigabytes_raise_wire_format_error(data: bytes) -> None:
    decodes_or_raises_wire_format_error(data)
