"""Artifacts in the run view, in Chromium: logged by a real agent, uploaded to the API a real
collector serves beside itself (found in Redis, as agents do), and downloaded from the
dashboard's own server (``/artifacts/RUN/NAME``), which reads a data dir with no API at all.

This module brings its own store and server (``served`` is overridden here): the shared one
has no API to upload to.
"""

from __future__ import annotations

import hashlib
import http.client
import os
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from conftest import XSS_NAME, Seeded, Served, open_page
from ledger import CollectorThread, wait_until
from PIL import Image

import aquarium.agent as aq
from aquarium.agent.errors import InvalidNameError
from aquarium.cli.api import start_beside
from aquarium.cli.redis_server import RedisServer
from aquarium.collector import Api

RUN = "art-run"
DATA = os.urandom(300_000)
HTML_NAME = XSS_NAME + ".txt"
SVG = b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'


@pytest.fixture(scope="module")
def served(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from aquarium.ui import UiServer, UiSettings, dashboard_for

    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    root = tmp_path_factory.mktemp("ui-artifacts")
    data_dir = root / "aquarium_data"
    files = root / "files"
    files.mkdir()
    (files / "data.bin").write_bytes(DATA)
    (files / "chart.svg").write_bytes(SVG)
    (files / "note.txt").write_text("a name with markup\n")
    with CollectorThread(redis_server.url, data_dir) as collector:
        api_server = start_beside(collector.collector, "127.0.0.1", 0)
        try:
            run = aq.init(
                experiment="artifacts",
                run_id=RUN,
                redis_url=redis_server.url,
                data_dir=root / "agent",
                commit_wait=20.0,
                finish_timeout=60.0,
            )
            for step in range(20):
                run.log({"loss": 1.0 / (step + 1)}, step=step)
            run.log_figure(Image.new("RGB", (64, 48), (200, 30, 30)), "plots/loss.png", step=19)
            run.log_artifact(files / "data.bin", name="out/data.bin", step=19)
            run.log_artifact(files / "chart.svg")
            run.log_artifact(files / "note.txt", name=HTML_NAME)
            with pytest.raises(InvalidNameError):
                run.log_artifact(files / "data.bin", name="../escape.bin")
            run.finish(timeout=60.0)
            with Api(data_dir) as api:
                wait_until(
                    lambda: [a["state"] for a in api.artifacts(RUN)] == ["stored"] * 4,
                    "the four artifacts are uploaded and stored",
                    timeout=60,
                )
        finally:
            api_server.stop()
        server = UiServer(dashboard_for(str(data_dir), redis_server.url), UiSettings(port=0)).start()
        try:
            yield Served(server.url, Seeded(data_dir, redis_server.url, [], RUN, RUN, 1), collector)
        finally:
            server.stop()


def get(served: Served, path: str) -> tuple[int, dict[str, str], bytes]:
    port = int(served.url.rsplit(":", 1)[1].strip("/"))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def test_the_run_view_lists_artifacts_shows_the_figure_and_downloads_exact_bytes(
    page: Any, served: Served, screenshot: Any
) -> None:
    open_page(page, served.url + f"?run={RUN}")
    card = page.locator("#aq-artifacts")
    card.wait_for(timeout=30_000)
    links = card.locator("a.aq-artifact")
    assert sorted(links.all_inner_texts()) == sorted(["plots/loss.png", "out/data.bin", "chart.svg", HTML_NAME])
    assert card.locator("img[onerror]").count() == 0  # the markup in a name is text, not an element
    thumb = card.locator("img.aq-thumb")
    thumb.wait_for(timeout=30_000)  # in the HTML pane's shadow root: a locator finds it, a query would not
    page.wait_for_function("(img) => img.complete && img.naturalWidth > 0", arg=thumb.element_handle(), timeout=30_000)
    width = thumb.evaluate("(img) => img.naturalWidth")
    assert width == 64
    assert card.locator("img.aq-thumb").count() == 1  # only the figure, not the SVG
    href = card.locator("a.aq-artifact", has_text="out/data.bin").get_attribute("href")
    assert href is not None
    answer = page.request.get(served.url.rstrip("/") + "/" + href.removeprefix("./"))
    assert answer.status == 200
    assert hashlib.sha256(answer.body()).hexdigest() == hashlib.sha256(DATA).hexdigest()
    assert answer.headers["content-disposition"].startswith("attachment")
    assert answer.headers["x-content-type-options"] == "nosniff"
    screenshot(page, "run-artifacts")


def test_a_figure_is_inline_an_svg_is_an_attachment(served: Served) -> None:
    status, headers, body = get(served, f"/artifacts/{RUN}/plots/loss.png")
    assert (status, headers["content-type"]) == (200, "image/png")
    assert headers["content-disposition"].startswith("inline")
    assert body.startswith(b"\x89PNG")
    status, headers, body = get(served, f"/artifacts/{RUN}/chart.svg")
    assert status == 200 and body == SVG
    assert headers["content-disposition"].startswith("attachment")
    assert headers["x-content-type-options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        f"/artifacts/{RUN}/..%2F..%2Fetc%2Fpasswd",
        f"/artifacts/{RUN}/../../etc/passwd",
        f"/artifacts/{RUN}/%2Fetc%2Fpasswd",
        "/artifacts/..%2F..%2F/etc%2Fpasswd",
        f"/artifacts/{RUN}/missing.bin",
        "/artifacts/no-such-run/out/data.bin",
        f"/artifacts/{RUN}/out/data.bin?rank=x",
    ],
)
def test_a_path_outside_the_store_or_unknown_is_refused(served: Served, path: str) -> None:
    status, _, body = get(served, path)
    assert status in (400, 404)
    assert b"root:" not in body and DATA[:64] not in body


def test_downloads_ask_for_the_dashboard_login_when_a_token_is_set(served: Served) -> None:
    from aquarium.ui import UiServer, UiSettings, dashboard_for

    server = UiServer(dashboard_for(str(served.seeded.data_dir), None), UiSettings(port=0, token="pw")).start()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
        conn.request("GET", f"/artifacts/{RUN}/out/data.bin")
        response = conn.getresponse()
        body = response.read()
        conn.close()
        assert response.status == 401 and DATA[:64] not in body
    finally:
        server.stop()
