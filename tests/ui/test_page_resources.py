"""What the served page asks the browser to load: no MathJax bundle (1.8 MB) unless maths is
on the page, and gzip over the network but not on loopback."""

from __future__ import annotations

import gzip
import http.client
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from batches import make_batch

from aquarium.collector import Store
from aquarium.ui import UiServer, UiSettings, dashboard_for

TOKEN = "page-token"


@pytest.fixture
def store_dir(tmp_path: Path) -> Path:
    with Store(tmp_path / "data") as store:
        store.ingest([make_batch(0, [0, 1], [1.0, 0.5])])
    return tmp_path / "data"


@pytest.fixture
def loopback(store_dir: Path) -> Iterator[UiServer]:
    server = UiServer(dashboard_for(str(store_dir), None), UiSettings(port=0)).start()
    yield server
    server.stop()


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def scripts(page: bytes) -> list[str]:
    return re.findall(r'<script[^>]+src="([^"]+)"', page.decode())


def test_the_page_loads_bokeh_but_not_its_mathjax_bundle(loopback: UiServer) -> None:
    status, headers, page = fetch(loopback.port, "/", {"Accept-Encoding": "gzip"})
    assert status == 200
    sources = scripts(page)
    assert any("bokeh.min.js" in s for s in sources) and any("tabulator" in s for s in sources)
    assert not any("mathjax" in s for s in sources), sources
    assert "content-encoding" not in headers  # loopback: bytes are free, gzip would only cost CPU


def test_mathjax_is_loaded_when_the_extension_asks_for_it() -> None:
    from bokeh.models import Div

    from aquarium.ui.resources import use_mathjax

    assert not use_mathjax([Div(text="<b>$not maths$</b>", disable_math=True)])
    assert use_mathjax([Div(text="$$\\alpha$$")])  # Bokeh's own test still applies


def test_off_loopback_the_page_and_its_scripts_are_gzipped(store_dir: Path) -> None:
    server = UiServer(dashboard_for(str(store_dir), None), UiSettings(host="0.0.0.0", port=0, token=TOKEN)).start()
    try:
        status, headers, page = fetch(server.port, "/login", {"Accept-Encoding": "gzip"})
        assert status == 200 and headers.get("content-encoding") == "gzip"
        assert b"<html" in gzip.decompress(page).lower()
        status, headers, body = fetch(server.port, "/static/js/bokeh.min.js", {"Accept-Encoding": "gzip"})
        assert status == 200 and headers.get("content-encoding") == "gzip"
        assert len(gzip.decompress(body)) > 3 * len(body)
    finally:
        server.stop()
