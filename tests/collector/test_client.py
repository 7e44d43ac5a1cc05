"""``Api`` answers the same over a data dir and over real HTTP (an ``ApiServer`` thread)."""

from __future__ import annotations

import math
import socket
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from batches import make_batch

from aquarium.agent.errors import AquariumError, RunNotFoundError
from aquarium.collector import Api, Store
from aquarium.collector.api import ApiConfigError, ApiServer, ApiSettings, create_app
from aquarium.collector.client import ApiError

STEPS = 5000


@pytest.fixture
def data_dir(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    with Store(path) as store:
        steps = list(range(STEPS))
        store.ingest(
            [
                make_batch(0, steps, [float(s) for s in steps], run="a", params={"lr": 0.1}, meta={"name": "alpha"}),
                make_batch(1, steps, [float(-s) for s in steps], run="a", key="acc"),
                make_batch(0, [0, 1, 2], [1.0, math.nan, math.inf], run="b", params={"lr": 0.001}, tags={"prod": ""}),
                make_batch(0, [0, 1, 2], [3.0, 4.0, 5.0], run="b", rank=1),
            ]
        )
    yield path


@pytest.fixture
def server(data_dir: Path) -> Iterator[ApiServer]:
    store = Store(data_dir, read_only=True)
    settings = ApiSettings(port=0)
    with ApiServer(create_app(store, settings), settings) as running:
        yield running
    store.close()


@pytest.fixture(params=["local", "http"])
def api(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Api]:
    target = str(data_dir) if request.param == "local" else request.getfixturevalue("server").url
    with Api(target) as client:
        yield client


def test_runs_as_a_dataframe(api: Api) -> None:
    df = api.runs(sort="params.lr")
    assert list(df["id"]) == ["b", "a"]
    assert list(df["params.lr"]) == [0.001, 0.1]
    assert df.loc[df["id"] == "a", "metrics.loss.max"].item() == STEPS - 1
    assert df.loc[df["id"] == "a", "name"].item() == "alpha"
    assert str(df["created_at"].dtype).startswith("datetime64")
    assert list(api.runs(filter='"prod" in tags')["id"]) == ["b"]
    assert api.runs(filter="params.lr > 1").empty


def test_runs_pages_through_everything(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("aquarium.collector.client.PAGE", 1)
    assert sorted(api.runs()["id"]) == ["a", "b"]
    assert len(api.runs(limit=1)) == 1


def test_history_is_indexed_by_step_one_column_per_key(api: Api) -> None:
    h = api.history("a", keys=["loss", "acc"])
    assert list(h.columns) == ["loss", "acc"] and h.index.name == "step"
    assert len(h) == STEPS and h.loc[1234, "loss"] == 1234.0 and h.loc[1234, "acc"] == -1234.0
    small = api.history("a", samples=200)
    assert sorted(small.columns) == ["acc", "loss"] and len(small) <= 400
    band = api.history("b", keys=["loss"], agg="all")
    assert list(band.columns) == ["loss", "loss.min", "loss.max"]
    assert band.loc[0, "loss"] == 2.0 and band.loc[0, "loss.max"] == 3.0


def test_series_keeps_nan_and_inf_exact(api: Api) -> None:
    w = api.series("b", "loss", rank=0)
    assert list(w.steps) == [0, 1, 2] and np.isnan(w.values[1]) and w.values[2] == math.inf
    assert list(api.series("a", "loss", start=10, end=12).values) == [10.0, 11.0, 12.0]


def test_a_series_without_times_has_the_same_points(api: Api) -> None:
    with_times = api.series("a", "loss", samples=300)
    without = api.series("a", "loss", samples=300, times=False)
    assert without.times is None and with_times.times is not None and len(with_times.times) == len(without.steps)
    assert np.array_equal(with_times.steps, without.steps) and np.array_equal(with_times.values, without.values)
    assert without.total == with_times.total == STEPS


def test_unknown_runs_raise_the_same_error(api: Api) -> None:
    with pytest.raises(RunNotFoundError):
        api.run("nope")
    with pytest.raises(RunNotFoundError):
        api.series("nope", "loss")
    with pytest.raises(AquariumError):
        api.series("a", "no-such-key")
    with pytest.raises(AquariumError):
        api.series("a", "loss", samples=0)
    assert api.keys("a") == ["acc", "loss"]
    assert api.run("b")["ranks"] == [0, 1]


def test_a_bad_filter_raises_query_error_with_its_position(api: Api) -> None:
    from aquarium.collector.query import QueryError

    with pytest.raises(QueryError) as caught:
        api.runs(filter="params.lr >> 1")
    assert caught.value.position == 11


def test_a_public_bind_needs_a_token(data_dir: Path) -> None:
    with pytest.raises(ApiConfigError, match="AQUARIUM_API_TOKEN"):
        ApiSettings(host="0.0.0.0", port=0).check_bind()
    with Store(data_dir, read_only=True) as store, pytest.raises(ApiConfigError):
        ApiServer(create_app(store), ApiSettings(host="0.0.0.0", port=0))
    ApiSettings(host="0.0.0.0", port=0, token="t").check_bind()  # allowed with a token
    ApiSettings(host="localhost", port=0).check_bind()


def test_the_client_sends_its_token(data_dir: Path) -> None:
    settings = ApiSettings(port=0, token="tok-123")
    with Store(data_dir, read_only=True) as store, ApiServer(create_app(store, settings), settings) as server:
        with Api(server.url, token="tok-123") as api:
            assert api.run("a")["id"] == "a"
        with Api(server.url, token="wrong") as api, pytest.raises(ApiError) as caught:
            api.run("a")
        assert caught.value.status == 403
        with Api(server.url) as api, pytest.raises(ApiError) as caught:
            api.run("a")
        assert caught.value.status == 401


def test_a_client_that_disconnects_mid_response_leaves_the_server_serving(server: ApiServer) -> None:
    host, port = "127.0.0.1", server.port
    for _ in range(5):
        with socket.create_connection((host, port)) as s:
            s.sendall(f"GET /api/runs/a/series/loss?format=columns HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
            s.recv(100)  # the first bytes, then hang up
    with Api(server.url) as api:
        assert len(api.series("a", "loss")) == STEPS


def test_an_overlong_url_is_refused(server: ApiServer) -> None:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", "/api/runs?filter=" + "x" * 20_000)
    assert conn.getresponse().status in (400, 413, 414, 431)
    conn.close()
    with Api(server.url) as api:
        assert len(api.runs()) == 2


def test_no_store_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(AquariumError, match="no Aquarium store"):
        Api(str(tmp_path / "empty"))
