"""The wire format round-trips exactly and rejects malformed batches with a reason."""

from __future__ import annotations

import math
from array import array

import msgpack
import pytest

from aquarium.agent import batcher
from aquarium.agent.errors import WireFormatError
from aquarium.agent.wire import MAX_BATCH_BYTES, ArtifactRecord, Batch, BatchId, MetricChunk, pack_batch, unpack_batch


def chunk(key: str, steps: list[int], values: list[float]) -> MetricChunk:
    return MetricChunk(
        key, array("q", steps).tobytes(), array("d", values).tobytes(), array("d", [1.7e9 + s for s in steps]).tobytes()
    )


def test_round_trip_is_exact_including_nan_and_inf() -> None:
    values = [0.1, math.nan, math.inf, -math.inf, -0.0, 5e-324, 1.7976931348623157e308]
    batch = Batch(
        BatchId("run-1", 3, "inc", 7),
        [chunk("loss", list(range(len(values))), values)],
        params={"lr": 0.001, "layers": [1, 2]},
        tags={"t": ""},
        status=[("running", 1.0)],
        meta={"name": "n"},
    )
    back = unpack_batch(pack_batch(batch))
    assert back.id == BatchId("run-1", 3, "inc", 7)
    assert back.metrics[0].steps == batch.metrics[0].steps
    assert back.metrics[0].values == batch.metrics[0].values  # bit-exact, NaN payload included
    assert back.params == {"lr": 0.001, "layers": [1, 2]} and back.status == [("running", 1.0)]
    assert back.meta == {"name": "n"} and back.point_count == len(values)


def body(**overrides: object) -> bytes:
    base: dict[str, object] = {"v": 1, "id": ["r", 0, "i", 0], "m": [["k", b"\0" * 8, b"\0" * 8, b"\0" * 8]]}
    base.update(overrides)
    return msgpack.packb(base, use_bin_type=True)


@pytest.mark.parametrize(
    "data, fragment",
    [
        (b"\xc1\xc1garbage", "not msgpack"),
        (msgpack.packb([1, 2, 3]), "not a map"),
        (body(v=99), "unknown wire version 99"),
        (body(v=None), "unknown wire version None"),
        (body(id=["r", 0, "i"]), "id must be"),
        (body(id=["bad id!", 0, "i", 0]), "bad run id"),
        (body(id=["r", -1, "i", 0]), "bad rank"),
        (body(id=["r", 0, "i", -5]), "bad seq"),
        (body(m=[["k", b"\0" * 8, b"\0" * 16, b"\0" * 8]]), "not equal"),
        (body(m=[["k", b"\0" * 7, b"\0" * 7, b"\0" * 7]]), "not equal"),
        (body(m=[["k", "str", b"\0" * 8, b"\0" * 8]]), "must be bin"),
        (body(m=[["x" * 300, b"\0" * 8, b"\0" * 8, b"\0" * 8]]), "bad metric name"),
        (body(m="nope"), "must be a list"),
        (body(s=[["done"]]), "status change"),
        (body(p=[1]), "must be a map"),
        (b"\0" * (MAX_BATCH_BYTES + 1), "exceeds"),
    ],
)
def test_malformed_batches_raise_with_reason(data: bytes, fragment: str) -> None:
    with pytest.raises(WireFormatError) as info:
        unpack_batch(data)
    assert fragment in info.value.reason


def test_packing_a_batch_over_the_limit_raises() -> None:
    n = MAX_BATCH_BYTES // 24 + 10
    batch = Batch(BatchId("r", 0, "i", 0), [chunk("k", list(range(n)), [0.0] * n)])
    with pytest.raises(WireFormatError, match="exceeds"):
        pack_batch(batch)


def test_batcher_splits_large_cycles_under_the_limit_and_keeps_every_point() -> None:
    queue = batcher.PointQueue()
    keys = tuple(f"metric/{i:03d}" for i in range(40))
    key_set = queue.register(keys)
    n = 3000  # 120k points: several batches
    for step in range(n):
        queue.values.extend(float(step * 1000 + i) for i in range(40))
        queue.steps.append(step)
        queue.times.append(1.0)
        queue.key_set_ids.append(key_set)
    batches = batcher.cut(queue.take(n), {"params": {"p": 1}}, "r", 0, "i", next_seq=5)
    assert len(batches) > 1 and [b.id.seq for b in batches] == list(range(5, 5 + len(batches)))
    packed = [pack_batch(b) for b in batches]
    assert all(len(p) <= MAX_BATCH_BYTES for p in packed)
    seen: dict[str, list[tuple[int, float]]] = {}
    for data in packed:
        for c in unpack_batch(data).metrics:
            seen.setdefault(c.key, []).extend(zip(array("q", c.steps), array("d", c.values)))
    assert batches[0].params == {"p": 1}
    for i, key in enumerate(keys):
        assert seen[key] == [(s, float(s * 1000 + i)) for s in range(n)]


def test_mixed_key_sets_keep_log_order_per_key() -> None:
    queue = batcher.PointQueue()
    train, val = queue.register(("loss", "lr")), queue.register(("loss", "val"))
    for step, (key_set, values) in enumerate(
        [(train, [1.0, 0.1]), (train, [2.0, 0.2]), (val, [9.0, 5.0]), (train, [3.0, 0.3])]
    ):
        queue.values.extend(values)
        queue.steps.append(step)
        queue.times.append(0.0)
        queue.key_set_ids.append(key_set)
    cols = queue.take(100)
    assert list(cols["loss"][0]) == [0, 1, 2, 3] and list(cols["loss"][1]) == [1.0, 2.0, 9.0, 3.0]
    assert list(cols["val"][0]) == [2] and list(cols["lr"][1]) == [0.1, 0.2, 0.3]
    assert len(queue) == 0 and len(queue.values) == 0


def test_a_metric_name_seen_before_is_still_not_a_valid_run_id() -> None:
    unpack_batch(body(m=[["has space", b"\0" * 8, b"\0" * 8, b"\0" * 8]]))  # remembered as a valid key
    with pytest.raises(WireFormatError, match="bad run id"):
        unpack_batch(body(id=["has space", 0, "i", 0]))
    unpack_batch(body())  # run "r", incarnation "i" now remembered
    with pytest.raises(WireFormatError, match="bad rank"):
        unpack_batch(body(id=["r", -1, "i", 0]))
    with pytest.raises(WireFormatError, match="bad metric name"):
        unpack_batch(body(m=[[["unhashable"], b"\0" * 8, b"\0" * 8, b"\0" * 8]]))


def nested_list(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = [value]
    return value


def nested_map(depth: int) -> object:
    value: object = 0
    for _ in range(depth):
        value = {"a": value}
    return value


DEEP = 900  # under msgpack's own stack limit (1024): only our bound stands between it and a RecursionError


@pytest.mark.parametrize(
    "overrides",
    [
        {"v": nested_list(DEEP)},
        {"id": nested_list(DEEP)},
        {"id": [nested_list(DEEP), 0, "i", 0]},
        {"id": ["r", nested_list(DEEP), "i", 0]},
        {"id": ["r", 0, nested_list(DEEP), 0]},
        {"id": ["r", 0, "i", nested_map(DEEP)]},
        {"m": [[nested_list(DEEP), b"\0" * 8, b"\0" * 8, b"\0" * 8]]},
        {"m": [nested_list(DEEP)]},
        {"m": nested_map(DEEP)},
        {"s": [[nested_list(DEEP), 1.0]]},
        {"s": [["running", nested_list(DEEP)]]},
        {"s": [nested_map(DEEP)]},
        {"p": {"lr": nested_list(DEEP)}},
        {"p": nested_map(DEEP)},
        {"t": {"tag": nested_map(DEEP)}},
        {"r": {"git": nested_map(DEEP)}},
        {"r": {"name": nested_list(DEEP)}},
    ],
    ids=lambda o: next(iter(o)),
)
def test_a_small_deeply_nested_batch_raises_wire_format_error_with_a_short_reason(overrides: dict[str, object]) -> None:
    data = body(**overrides)
    assert len(data) < 4096  # a few KB at most
    with pytest.raises(WireFormatError) as info:
        unpack_batch(data)
    assert len(str(info.value)) < 300


def test_values_nest_up_to_the_limit_and_no_deeper() -> None:
    from aquarium.agent.wire import MAX_VALUE_DEPTH

    deepest = nested_list(MAX_VALUE_DEPTH - 1)  # inside the params map: MAX_VALUE_DEPTH levels in all
    assert unpack_batch(body(p={"x": deepest})).params == {"x": deepest}
    with pytest.raises(WireFormatError, match="nest deeper"):
        unpack_batch(body(p={"x": [deepest]}))


@pytest.mark.parametrize(
    "overrides, fragment",
    [
        ({"id": ["r\n", 0, "i", 0]}, "bad run id"),
        ({"id": ["r", 2**63, "i", 0]}, "bad rank"),
        ({"id": ["r", True, "i", 0]}, "bad rank"),
        ({"id": ["r", 0, "i", 2**64 - 1]}, "bad seq"),
        ({"id": ["r", 0, "i" * 65, 0]}, "bad incarnation"),
        ({"id": ["r", 0, b"i", 0]}, "bad incarnation"),
        ({"s": [["x" * 65, 1.0]]}, "bad status"),
        ({"s": [["running", math.nan]]}, "bad status time"),
        ({"s": [["running", "now"]]}, "bad status time"),
        ({"p": {"a": {b"bytes-key": 1}}}, "keys must be strings"),
        ({"v": "1"}, "unknown wire version"),
        ({"v": 1.0}, "unknown wire version"),
    ],
)
def test_id_and_status_fields_are_plain_bounded_values(overrides: dict[str, object], fragment: str) -> None:
    with pytest.raises(WireFormatError) as info:
        unpack_batch(body(**overrides))
    assert fragment in info.value.reason


def test_extension_types_and_lying_length_headers_are_wire_format_errors() -> None:
    with pytest.raises(WireFormatError, match="not msgpack"):
        unpack_batch(body(p={"x": msgpack.ExtType(5, b"abc")}))
    for header in (b"\xdb\xff\xff\xff\xff", b"\xdd\xff\xff\xff\xff", b"\xdf\xff\xff\xff\xff", b"\xc6\xff\xff\xff\xff"):
        with pytest.raises(WireFormatError, match="not msgpack"):
            unpack_batch(header + b"\0" * 16)  # a str/array/map/bin claiming 4 GiB


def artifact_body(**fields: object) -> bytes:
    record: dict[str, object] = {"upload": "a" * 32, "name": "model.pt", "kind": "model", "size": 3, "time": 1.0}
    record.update(fields)
    return msgpack.packb({"v": 1, "id": ["run-1", 0, "inc", 0], "m": [], "a": [record]}, use_bin_type=True)


def test_artifact_records_round_trip() -> None:
    record = ArtifactRecord("0123456789abcdef" * 2, "ckpt/model.pt", "model", 10, 1.5, 7, "pytorch", "x/y", {"k": 1})
    back = unpack_batch(pack_batch(Batch(BatchId("run-1", 2, "inc", 0), artifacts=[record])))
    assert back.artifacts == [record]


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"name": "../../etc/passwd"}, "bad artifact name"),
        ({"name": "/etc/passwd"}, "bad artifact name"),
        ({"name": "a\x00b"}, "bad artifact name"),
        ({"name": "nul"}, "bad artifact name"),
        ({"upload": "../x"}, "bad artifact upload id"),
        ({"kind": "virus"}, "bad artifact kind"),
        ({"size": -1}, "bad artifact size"),
        ({"time": float("nan")}, "bad artifact time"),
        ({"step": 2**63}, "bad artifact step"),
        ({"media_type": "text"}, "bad artifact media type"),
        ({"framework": "x" * 65}, "bad artifact framework"),
    ],
)
def test_bad_artifact_records_are_refused_with_a_reason(fields: dict[str, object], reason: str) -> None:
    with pytest.raises(WireFormatError, match=reason):
        unpack_batch(artifact_body(**fields))
