"""Bad input raises at the call site, from every thread, before anything is appended.

Each failed call must leave the run exactly as it was: the points logged afterwards read back at
their own steps, and accepted = stored + reported dropped.
"""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import aquarium.agent as aq
from aquarium.agent.errors import InvalidNameError, InvalidValueError
from aquarium.agent.values import MAX_KEYS_PER_CALL, MAX_PARAM_DEPTH, MAX_TEXT_CHARS, encodable_text, flatten_params
from aquarium.collector import Store

SURROGATE = "\ud800"  # a lone surrogate: a valid str that cannot be encoded as UTF-8


def nested_dict(levels: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 1):
        value = {"k": value}
    return value


def nested_list(levels: int) -> list[Any]:
    value: list[Any] = [1]
    for _ in range(levels - 1):
        value = [value]
    return value


def log_in_thread(run: aq.Run, metrics: dict[str, Any], step: int | None) -> BaseException | None:
    """Call ``run.log`` from a thread that is not the run's own; return what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            run.log(metrics, step=step)
        except BaseException as e:  # handed back to the test
            raised.append(e)

    thread = threading.Thread(target=target)
    thread.start()
    thread.join()
    return raised[0] if raised else None


BAD_CALLS: dict[str, tuple[Callable[[aq.Run], object], type[Exception], str]] = {
    "param value": (lambda run: run.log_params({"opt": SURROGATE}), InvalidValueError, "opt"),
    "param value in a list": (lambda run: run.log_params({"xs": ["ok", SURROGATE]}), InvalidValueError, "xs"),
    "param name": (lambda run: run.log_params({"bad" + SURROGATE: 1}), InvalidNameError, "parameter name"),
    "nested param name": (lambda run: run.log_params({"o": {SURROGATE: 1}}), InvalidNameError, "parameter name"),
    "tag name": (lambda run: run.set_tags({SURROGATE: "v"}), InvalidNameError, "tag name"),
    "tag in a list": (lambda run: run.set_tags([SURROGATE]), InvalidNameError, "tag name"),
    "tag value": (lambda run: run.set_tags({"team": SURROGATE}), InvalidValueError, "team"),
    "metric name": (lambda run: run.log({"loss" + SURROGATE: 1.0}), InvalidNameError, "metric name"),
    "status": (lambda run: run.set_status("done" + SURROGATE), InvalidNameError, "status"),
}


@pytest.mark.parametrize("case", list(BAD_CALLS))
def test_strings_that_cannot_be_utf8_raise_naming_the_key(data_dir: Path, case: str) -> None:
    call, error, named = BAD_CALLS[case]
    run = aq.init(experiment="call-site", mode="offline", config={"lr": 0.1}, tags={"ok": "yes"})
    run.log({"x": 1.0}, step=0)
    with pytest.raises(error) as info:
        call(run)
    assert named in str(info.value) and "UTF-8" in str(info.value)
    run.log({"x": 2.0}, step=1)
    report = run.finish()
    assert (report.points, report.dropped_points) == (2, 0)
    with Store(data_dir) as store:
        store.ingest_spool()
        stored = store.get_run(run.id)
        assert stored["status"] == "completed"
        assert stored["params"] == {"lr": 0.1} and stored["tags"] == {"ok": "yes"}
        assert store.read_series(run.id, "x").values.tolist() == [1.0, 2.0]


@pytest.mark.parametrize("field", ["name", "experiment"])
def test_run_name_and_experiment_must_encode(data_dir: Path, field: str) -> None:
    with pytest.raises(InvalidNameError, match="UTF-8"):
        aq.init(mode="offline", **{field: "run" + SURROGATE})


@pytest.mark.parametrize("step", [2**63, -(2**63) - 1, 2**70])
def test_out_of_range_steps_raise_on_the_runs_own_thread_and_on_others(data_dir: Path, step: int) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    with pytest.raises(InvalidValueError, match="64-bit"):
        run.log({"x": 1.0}, step=step)
    raised = log_in_thread(run, {"y": 1.0}, step)
    assert isinstance(raised, InvalidValueError) and "64-bit" in str(raised)
    assert log_in_thread(run, {"y": 5.0}, 2**63 - 1) is None  # the limits themselves are fine
    run.log({"x": 3.0}, step=-(2**63))
    report = run.finish()
    assert (report.points, report.dropped_points) == (2, 0)
    with Store(data_dir) as store:
        store.ingest_spool()
        assert store.read_series(run.id, "y").steps.tolist() == [2**63 - 1]
        assert store.read_series(run.id, "x").steps.tolist() == [-(2**63)]


def test_a_failed_step_appends_nothing_and_later_points_keep_their_steps(data_dir: Path) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    with pytest.raises(InvalidValueError):
        run.log({"loss": 99.0, "acc": 99.0}, step=2**63)
    for step in range(5):
        run.log({"loss": float(step), "acc": step / 10})
    report = run.finish()
    assert (report.points, report.dropped_points) == (10, 0)
    with Store(data_dir) as store:
        store.ingest_spool()
        loss, acc = store.read_series(run.id, "loss"), store.read_series(run.id, "acc")
        assert loss.steps.tolist() == [0, 1, 2, 3, 4] and loss.values.tolist() == [0.0, 1.0, 2.0, 3.0, 4.0]
        assert acc.steps.tolist() == [0, 1, 2, 3, 4] and acc.values.tolist() == [0.0, 0.1, 0.2, 0.3, 0.4]


def test_the_default_step_after_the_last_int64_step_raises(data_dir: Path) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    run.log({"x": 1.0}, step=2**63 - 1)
    with pytest.raises(InvalidValueError, match="64-bit"):
        run.log({"x": 2.0})
    assert run.finish().points == 1


@pytest.mark.parametrize(
    "params",
    [
        nested_dict(300),
        {"grid": nested_list(300)},
        {"a": [{"b": nested_list(MAX_PARAM_DEPTH)}]},
        {"m": nested_list(40)},
    ],
    ids=["dict-300", "list-300", "list-in-dict-in-list", "list-40"],
)
def test_deeply_nested_params_raise_with_a_clear_error(data_dir: Path, params: dict[str, Any]) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    with pytest.raises(InvalidValueError, match=f"nested more than {MAX_PARAM_DEPTH} levels"):
        run.log_params(params)
    run.finish()
    with Store(data_dir) as store:
        store.ingest_spool()
        assert store.get_run(run.id)["params"] == {}


def test_params_nested_up_to_the_limit_are_stored(data_dir: Path) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    run.log_params({"grid": nested_list(MAX_PARAM_DEPTH - 1), "a": nested_dict(MAX_PARAM_DEPTH - 1)})
    run.finish()
    with Store(data_dir) as store:
        store.ingest_spool()
        params = store.get_run(run.id)["params"]
    assert params["grid"] == nested_list(MAX_PARAM_DEPTH - 1)
    assert params["a." + "k." * (MAX_PARAM_DEPTH - 2) + "leaf"] == 1


def test_ints_too_large_to_show_as_text_raise(data_dir: Path) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    with pytest.raises(InvalidValueError, match="'seed'"):
        run.log_params({"seed": 10**5000})
    run.finish()


BIG = MAX_KEYS_PER_CALL + 1
TOO_MANY_KEYS: dict[str, Callable[[aq.Run], object]] = {
    "metrics": lambda run: run.log({f"m{i}": 1.0 for i in range(BIG)}),
    "params": lambda run: run.log_params({f"p{i}": i for i in range(BIG)}),
    "nested params": lambda run: run.log_params({"o": {f"p{i}": i for i in range(BIG)}}),
    "tags": lambda run: run.set_tags({f"t{i}": "v" for i in range(BIG)}),
    "tag names": lambda run: run.set_tags([f"t{i}" for i in range(BIG)]),
}


@pytest.mark.parametrize("case", list(TOO_MANY_KEYS))
def test_more_keys_than_the_limit_raise(data_dir: Path, case: str) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    with pytest.raises(InvalidValueError, match=f"at most {MAX_KEYS_PER_CALL} keys"):
        TOO_MANY_KEYS[case](run)
    report = run.finish()
    assert (report.points, report.dropped_points) == (0, 0)
    with Store(data_dir) as store:
        store.ingest_spool()
        stored = store.get_run(run.id)
        assert stored["params"] == {} and stored["tags"] == {} and stored["metrics"] == {}


def test_the_key_limit_itself_is_accepted(data_dir: Path) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    run.log({f"m{i}": float(i) for i in range(MAX_KEYS_PER_CALL)}, step=0)
    assert run.finish().points == MAX_KEYS_PER_CALL


@pytest.mark.parametrize(
    "call",
    [
        lambda run: run.set_tags({"notes": "x" * 10_000_000}),
        lambda run: run.set_tags({"notes": "x" * (MAX_TEXT_CHARS + 1)}),
        lambda run: run.log_params({"notes": "x" * (MAX_TEXT_CHARS + 1)}),
        lambda run: run.log_params({"notes": ["x" * 1000] * 100}),
    ],
    ids=["tag-10MB", "tag-over-limit", "param-over-limit", "param-list-over-limit"],
)
def test_values_over_the_text_limit_raise(data_dir: Path, call: Callable[[aq.Run], object]) -> None:
    run = aq.init(experiment="call-site", mode="offline")
    with pytest.raises(InvalidValueError, match=f"limited to {MAX_TEXT_CHARS} characters"):
        call(run)
    run.finish()


def test_the_largest_accepted_tag_and_param_values_are_stored_exactly(data_dir: Path) -> None:
    widest = "\U0001f41f" * MAX_TEXT_CHARS  # four UTF-8 bytes a character: the most bytes the limit allows
    run = aq.init(experiment="call-site", mode="offline")
    run.log_params({"notes": widest})
    run.set_tags({"notes": widest})
    run.log({"x": 1.0}, step=0)
    report = run.finish()
    assert (report.points, report.dropped_points) == (1, 0)
    with Store(data_dir) as store:
        store.ingest_spool()
        stored = store.get_run(run.id)
    assert stored["params"]["notes"] == widest and stored["tags"]["notes"] == widest


def test_undecodable_bytes_in_argv_do_not_lose_the_first_batch(tmp_path: Path) -> None:
    code = (
        "import sys, aquarium.agent as aq; "
        f"run = aq.init(experiment='e', mode='offline', data_dir={str(tmp_path)!r}, config={{'lr': 0.1}}); "
        "aq.log({'x': 1.0}); print(run.id, run.finish().points)"
    )
    result = subprocess.run([sys.executable, "-c", code, b"bad-\xff-arg"], capture_output=True, timeout=60, check=True)
    run_id, points = result.stdout.decode().split()
    assert points == "1"
    with Store(tmp_path) as store:
        store.ingest_spool()
        stored = store.get_run(run_id)
    assert stored["params"] == {"lr": 0.1} and stored["metrics"]["x"]["count"] == 1


class FakeTensorScalar:
    """Duck-typed like a one-element torch tensor: ``numel()`` is a method, ``size`` too."""

    def numel(self) -> int:
        return 1

    def size(self) -> tuple[int, ...]:
        return ()

    def item(self) -> float:
        return 0.5


def test_tensor_scalars_as_params_keep_their_number() -> None:
    assert flatten_params({"lr": FakeTensorScalar(), "xs": [FakeTensorScalar()]}) == {"lr": 0.5, "xs": [0.5]}


def test_argv_text_with_undecodable_bytes_is_escaped() -> None:
    assert encodable_text("bad-\udcff-arg", 500) == "bad-\\xff-arg"
    assert encodable_text("lone-\ud800", 500) == "lone-\\ud800"
    assert encodable_text("ok-ü", 3) == "ok-"


def test_points_logged_from_other_threads_are_bounded_and_counted_like_the_owners(data_dir: Path) -> None:
    """A shipper that does not cut (here: a one-hour flush interval) must not let another thread's
    entries grow without bound: past the queue limit they are dropped and counted."""
    run = aq.init(experiment="e", mode="offline", data_dir=data_dir, flush_interval=3600.0, max_memory_bytes=1)
    limit = run._queue_limit  # the floor: 10,000 entries

    def log_from_a_worker_thread() -> None:
        for step in range(limit + 7):
            run.log({"a": 1.0, "b": 2.0}, step=step)

    worker = threading.Thread(target=log_from_a_worker_thread)
    worker.start()
    worker.join()
    assert run.stats.dropped_points == 7 * 2
    report = run.finish()
    with Store(data_dir) as store:
        store.ingest_spool()
        stored = sum(m["count"] for m in store.get_run(run.id)["metrics"].values())
    assert stored + report.dropped_points == (limit + 7) * 2
