"""Store.search_runs: which runs each filter finds, in which order, with what details."""

from __future__ import annotations

import math
import sqlite3
import time
from datetime import datetime
from typing import Any

import pytest
from batches import make_batch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aquarium.collector import QueryError, RunPage, Store

DAY = datetime(2026, 11, 10).timestamp()
NAN = math.nan


def run_batches(
    run: str,
    *,
    started: float,
    statuses: list[tuple[str, float]],
    params: dict[str, Any],
    tags: dict[str, Any],
    metrics: dict[tuple[str, int], list[float]],
    experiment: str = "vision",
) -> list[Any]:
    meta = {"name": f"net-{run}", "experiment": experiment, "started_at": started}
    batches = [make_batch(0, [], [], run=run, params=params, tags=tags, status=statuses, meta=meta)]
    seq = {0: 1}
    for (key, rank), values in metrics.items():
        s = seq.setdefault(rank, 0)
        batches.append(make_batch(s, list(range(len(values))), values, run=run, rank=rank, key=key))
        seq[rank] = s + 1
    return batches


@pytest.fixture
def runs(store: Store) -> Store:
    """Four runs, ingested in the order a, b, c, d (so d is the newest)."""
    now = time.time()
    store.ingest(
        run_batches(
            "a",
            started=DAY,
            statuses=[("running", DAY), ("completed", DAY + 3600)],
            params={"lr": 0.001, "optimizer": "adam", "layers": 4, "amp": True, "optimizer.lr": 0.01, "w n": "x"},
            tags={"team": "x", "prod": ""},
            metrics={
                ("val_loss", 0): [0.5, 0.2, 0.25],
                ("val_loss", 1): [0.6, 0.1, 0.3, 0.35],
                ("train/loss", 0): [1.0],
            },
        )
    )
    store.ingest(
        run_batches(
            "b",
            started=DAY + 86400,
            statuses=[("running", DAY + 86400), ("failed", DAY + 86410)],
            params={"lr": "0.01", "optimizer": "sgd", "amp": False, "note": None},
            tags={"team": "y"},
            metrics={("val_loss", 0): [0.4, NAN]},
        )
    )
    store.ingest(
        run_batches(
            "c",
            started=now - 120,
            statuses=[("running", now - 120)],
            params={"lr": 1e-5, "layers": [1, 2]},
            tags={},
            metrics={},
            experiment="audio",
        )
    )
    store.ingest(
        run_batches(
            "d",
            started=DAY + 2 * 86400,
            statuses=[("running", DAY + 2 * 86400), ("completed", DAY + 2 * 86400 + 60)],
            params={"lr": 0.1, "optimizer": "adamw", "layers": 12},
            tags={"team": "x", "prod": "", "Robert'); DROP TABLE runs; --": "bobby"},
            metrics={("val_loss", 0): [0.05], ("train/loss", 0): [2.0, 0.5]},
        )
    )
    return store


def ids(store: Store, filter: str | None = None, sort: str | None = None, **paging: Any) -> list[str]:
    return [run["id"] for run in store.search_runs(filter, sort, **paging).runs]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        # numbers compare numerically, strings as strings; a string param never matches a number
        ("params.lr > 1e-4", ["d", "a"]),
        ("params.lr >= 0.001", ["d", "a"]),
        ("params.lr < 0.001", ["c"]),
        ("params.lr == 0.1", ["d"]),
        ("params.lr == 1e-3", ["a"]),
        ('params.lr == "0.01"', ["b"]),
        ('params.lr > "0"', ["b"]),
        ("params.lr != 0.1", ["c", "b", "a"]),
        ("params.layers == 4.0", ["a"]),
        ("params.layers > 5", ["d"]),
        ("params.layers in (4, 12)", ["d", "a"]),
        ('params.optimizer in ("adam", "sgd")', ["b", "a"]),
        ("params.optimizer == null", ["c"]),
        ("params.note == null", ["d", "c", "b", "a"]),  # a JSON null is no value
        ("params.note != null", []),
        ("params.optimizer != null", ["d", "b", "a"]),
        ('params.optimizer != "adam"', ["d", "b"]),
        ('not params.optimizer == "adam"', ["d", "c", "b"]),
        ("params.amp == true", ["a"]),
        ("params.amp == false", ["b"]),
        ("params.amp != true", ["b"]),
        ("params.optimizer.lr == 0.01", ["a"]),
        ('params."w n" == "x"', ["a"]),
        ('params.optimizer contains "adam"', ["d", "a"]),
        ('params.optimizer ~ "^adam$"', ["a"]),
        ('params.lr contains "0"', ["b"]),  # only string params contain text
        ("params.layers == 2", []),  # a list is no number
        # metrics across ranks: last of the highest step, min and max of all, count of all points
        ("metrics.val_loss.min < 0.15", ["d", "a"]),
        ("metrics.val_loss.min == 0.1", ["a"]),
        ("metrics.val_loss.max >= 0.6", ["a"]),
        ("metrics.val_loss.last == 0.35", ["a"]),
        ("metrics.val_loss.last == null", ["c", "b"]),  # b logged NaN last; c logged nothing
        ("metrics.val_loss.last != null", ["d", "a"]),
        ("metrics.val_loss.count == 7", ["a"]),
        ("metrics.val_loss.count >= 1", ["d", "b", "a"]),
        ("val_loss.min < 0.3", ["d", "a"]),
        ("metrics.train/loss.max > 1.5", ["d"]),
        ("train/loss.last == 1", ["a"]),
        ("not metrics.val_loss.min < 0.15", ["c", "b"]),
        # tags
        ('"prod" in tags', ["d", "a"]),
        ('tags contains "prod"', ["d", "a"]),
        ('not "prod" in tags', ["c", "b"]),
        ('tags.team == "x"', ["d", "a"]),
        ('tags.team != "x"', ["b"]),
        ("tags.team == null", ["c"]),
        ('not tags.team == "x"', ["c", "b"]),
        ('tags.team in ("y", null)', ["c", "b"]),
        # run columns
        ('status == "completed"', ["d", "a"]),
        ('status in ("running", "failed")', ["c", "b"]),
        ('experiment == "audio"', ["c"]),
        ('name == "net-b"', ["b"]),
        ('name contains "-c"', ["c"]),
        ('name ~ "^net-[ab]$"', ["b", "a"]),
        ('name ~ "NET"', []),
        ('name ~ "(?i)NET-A"', ["a"]),
        ('id == "d" or id == "a"', ["d", "a"]),
        ('id > "b"', ["d", "c"]),
        # times: ISO dates (local time), unix seconds, relative to now
        ("started < 2026-11-11", ["a"]),
        ('started >= "2026-11-11" and started < "2026-11-12T00:00"', ["b"]),
        (f"started > {DAY + 86400}", ["d", "c"]),
        ("started > -1h", ["c"]),
        ("started < -1d", ["d", "b", "a"]),
        ("created > -1h", ["d", "c", "b", "a"]),
        ("created < -1h", []),
        ("ended == null", ["c"]),
        ("ended > 2026-11-11", ["d", "b"]),
        # duration: ended (or now, while running) minus started
        ("duration == 3600", ["a"]),
        ("duration >= 1h", ["a"]),
        ("duration < 90s", ["d", "b"]),
        ("duration >= 1m and duration < 5m", ["d", "c"]),
        # combinations
        ('params.lr > 1e-4 and "prod" in tags and not metrics.val_loss.min > 0.07', ["d"]),
        ('(status == "failed" or experiment == "audio") and params.lr != null', ["c", "b"]),
    ],
)
def test_filters_find_exactly(runs: Store, query: str, expected: list[str]) -> None:
    assert ids(runs, query) == expected


def test_default_order_is_newest_first(runs: Store) -> None:
    assert ids(runs) == ["d", "c", "b", "a"]
    assert ids(runs, "") == ids(runs, "  ") == ["d", "c", "b", "a"]


@pytest.mark.parametrize(
    ("sort", "expected"),
    [
        ("metrics.val_loss.min", ["d", "a", "b", "c"]),  # c has no val_loss: last
        ("-metrics.val_loss.min", ["b", "a", "d", "c"]),  # still last when descending
        ("metrics.val_loss.last", ["d", "a", "c", "b"]),  # NaN is no value: last, then newest first
        ("params.lr", ["c", "a", "d", "b"]),  # numbers before strings
        ("params.optimizer desc", ["b", "d", "a", "c"]),
        ("tags.team, -id", ["d", "a", "b", "c"]),
        ("-duration", ["a", "c", "d", "b"]),
        ("started", ["a", "b", "d", "c"]),
        ("name", ["a", "b", "c", "d"]),
        ("-status, name", ["c", "b", "a", "d"]),
    ],
)
def test_sorts(runs: Store, sort: str, expected: list[str]) -> None:
    assert ids(runs, sort=sort) == expected


def test_limit_offset_and_total(runs: Store) -> None:
    page = runs.search_runs(sort="name", limit=2)
    assert isinstance(page, RunPage) and [r["id"] for r in page.runs] == ["a", "b"] and page.total == 4
    page = runs.search_runs(sort="name", limit=2, offset=3)
    assert [r["id"] for r in page.runs] == ["d"] and page.total == 4
    page = runs.search_runs("params.lr > 1e-4", limit=10, offset=5)
    assert page.runs == [] and page.total == 2
    page = runs.search_runs("params.lr > 1e-4", limit=0)
    assert page.runs == [] and page.total == 2
    assert runs.search_runs("id == 'nope'") == RunPage([], 0)
    with pytest.raises(ValueError):
        runs.search_runs(limit=-1)


def test_each_run_has_its_columns_params_tags_and_metrics(runs: Store) -> None:
    listed = {run["id"]: run for run in runs.list_runs()}
    found = {run["id"]: run for run in runs.search_runs().runs}
    for run_id, run in found.items():
        assert {k: run[k] for k in listed[run_id]} == listed[run_id]
        detail = runs.get_run(run_id)
        assert run["params"] == detail["params"] and run["tags"] == detail["tags"]
        assert set(run["metrics"]) == set(detail["metrics"])
    a = found["a"]
    assert a["duration"] == 3600.0 and a["ranks"] == 2 and a["experiment"] == "vision"
    assert a["params"]["amp"] is True and a["params"]["optimizer.lr"] == 0.01
    assert a["tags"] == {"prod": "", "team": "x"}
    assert a["metrics"]["val_loss"] == {"last": 0.35, "min": 0.1, "max": 0.6, "count": 7}
    assert a["metrics"]["train/loss"] == {"last": 1.0, "min": 1.0, "max": 1.0, "count": 1}
    b = found["b"]
    assert math.isnan(b["metrics"]["val_loss"]["last"]) and b["metrics"]["val_loss"]["min"] == 0.4
    assert b["params"]["note"] is None and b["duration"] == 10.0
    assert 119 <= found["c"]["duration"] < 180 and found["c"]["metrics"] == {}


def test_filter_values_never_reach_the_sql(runs: Store) -> None:
    for query in (
        'name == "x\'); DROP TABLE runs; --"',
        "params.lr == 'x\"); DROP TABLE runs; --'",
        'tags."x\'); DROP TABLE runs; --" == "1"',
        'name ~ "\'; DROP TABLE runs; --"',
    ):
        assert runs.search_runs(query).total == 0
    assert ids(runs, '"Robert\'); DROP TABLE runs; --" in tags') == ["d"]
    assert ids(runs, "tags.\"Robert'); DROP TABLE runs; --\" == 'bobby'") == ["d"]
    assert ids(runs, sort='params."x\'); DROP TABLE runs; --", name') == ["a", "b", "c", "d"]
    assert len(runs.list_runs()) == 4


def test_a_long_or_chain_stays_within_sqlite_limits(runs: Store) -> None:
    query = " or ".join(f"id=='{i}'" for i in range(300)) + " or id=='a'"
    assert len(query) < 4096 and ids(runs, query) == ["a"]


def test_bad_queries_raise_query_error(runs: Store) -> None:
    with pytest.raises(QueryError, match="unknown field"):
        runs.search_runs("foo > 1")
    with pytest.raises(QueryError, match="invalid regular expression"):
        runs.search_runs('name ~ "["')
    with pytest.raises(QueryError):
        runs.search_runs(sort="tags")


def test_a_param_stored_as_nan_compares_false_not_an_error(store: Store) -> None:
    store.ingest([make_batch(0, [], [], run="n", params={"lr": NAN, "x": math.inf})])
    assert ids(store, "params.lr > 0") == ids(store, "params.lr == 'NaN'") == []
    assert ids(store, "params.lr != null") == ["n"] and ids(store, "params.x != 1") == ["n"]
    assert ids(store, sort="params.lr") == ["n"]
    assert math.isnan(store.search_runs().runs[0]["params"]["lr"])


def test_many_runs_are_fetched_in_batches(store: Store) -> None:
    store.ingest([make_batch(0, [0], [float(i)], run=f"r{i:04d}", params={"i": i}) for i in range(1200)])
    page = store.search_runs("params.i >= 100", sort="metrics.loss.last")
    assert page.total == 1100 and [r["params"]["i"] for r in page.runs] == list(range(100, 1200))
    assert all(r["metrics"]["loss"]["last"] == r["params"]["i"] for r in page.runs)


def test_a_read_only_store_searches(runs: Store) -> None:
    path = runs.data_dir
    runs.close()
    with Store(path, read_only=True) as store:
        assert ids(store, '"prod" in tags') == ["d", "a"]
    assert sqlite3.connect(path / "aquarium.db").execute("SELECT count(*) FROM runs").fetchone()[0] == 4


FIELDS = [
    "params.lr",
    "params.optimizer",
    "params.amp",
    "params.layers",
    "params.note",
    "metrics.val_loss.last",
    "metrics.val_loss.min",
    "val_loss.max",
    "metrics.train/loss.count",
    "tags.team",
    "tags",
    "status",
    "name",
    "id",
    "experiment",
    "created",
    "started",
    "ended",
    "duration",
]
OPS = ["==", "!=", "<", "<=", ">", ">=", "contains", "~", "in"]
LITERALS = [
    "1",
    "-1.5e-3",
    '"adam"',
    "'x'",
    "true",
    "false",
    "null",
    "-7d",
    "5m",
    "2026-11-30",
    '("a", 1, null)',
    '"^a"',
]
comparison = st.builds(
    lambda f, op, v: f"{f} {op} {v}", st.sampled_from(FIELDS), st.sampled_from(OPS), st.sampled_from(LITERALS)
)
queries = st.recursive(
    comparison | st.just('"prod" in tags'),
    lambda inner: (
        st.builds(lambda a, j, b: f"({a} {j} {b})", inner, st.sampled_from(["and", "or"]), inner)
        | inner.map(lambda q: f"not {q}")
    ),
    max_leaves=6,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(query=queries, sort=st.lists(st.sampled_from(FIELDS[:-9] + ["-duration", "name desc"]), max_size=3))
def test_whatever_parses_also_runs(runs: Store, query: str, sort: list[str]) -> None:
    """Each query the parser accepts compiles to SQL SQLite runs (the runs are only read here)."""
    try:
        page = runs.search_runs(query, ", ".join(s for s in sort if s != "tags") or None, limit=2)
    except QueryError:
        return
    assert page.total <= 4 and len(page.runs) <= 2
