"""The dashboard's browser tests: a real redis-server, a real collector, runs logged through the
agent, the dashboard served on a free port, and Debian's Chromium driven by Playwright.

The server and the browser are module-scoped (starting them is the slow part); each test gets a
fresh page whose console errors, uncaught exceptions, dialogs and requests leaving 127.0.0.1 fail
the test. Screenshots of each view are kept as test artifacts in ``.test-artifacts/screenshots/``
(or ``$AQUARIUM_SCREENSHOTS``), besides the test's tmp dir.
"""

from __future__ import annotations

import os
import shutil
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import redis
from ledger import CollectorThread, wait_until

import aquarium.agent as aq
from aquarium.cli.redis_server import RedisServer
from aquarium.collector import Api

playwright_api = pytest.importorskip("playwright.sync_api", reason="the ui tests drive Chromium with Playwright")

CHROMIUM = "/usr/bin/chromium"
SHOTS = Path(os.environ.get("AQUARIUM_SCREENSHOTS") or Path(__file__).parents[2] / ".test-artifacts" / "screenshots")
XSS_NAME = "<img src=x onerror=alert(1)>"
SWEEP = 30  # runs of the "sweep" experiment: more than one page of the table
DDP_STEPS = 3000


@dataclass
class Seeded:
    data_dir: Path
    redis_url: str
    sweep: list[str]
    ddp: str
    xss: str
    total: int


@dataclass
class Served:
    url: str
    seeded: Seeded
    collector: CollectorThread


def _log_run(redis_url: str, data_dir: Path, run_id: str, name: str, **options: Any) -> list[aq.Run]:
    world = int(options.pop("world_size", 1))
    steps = int(options.pop("steps", 50))
    params = options.pop("params", {})
    runs = [
        aq.init(
            experiment=options.get("experiment", "sweep"),
            name=name,
            run_id=run_id,
            rank=rank,
            world_size=world,
            redis_url=redis_url,
            data_dir=data_dir / "agent",
            tags=options.get("tags", {"ui-test": ""}),
            commit_wait=20.0,
            finish_timeout=30.0,
        )
        for rank in range(world)
    ]
    for run in runs:
        run.log_params(params)
        for step in range(steps):
            run.log({"loss": 1.0 / (step + 1) + 0.1 * run.rank, "accuracy": step / steps}, step=step)
    return runs


@pytest.fixture(scope="module")
def seeded(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Seeded, CollectorThread]]:
    client = redis.Redis.from_url(redis_server.url)
    client.flushall()
    client.close()
    data_dir = tmp_path_factory.mktemp("ui") / "aquarium_data"
    with CollectorThread(redis_server.url, data_dir) as collector:
        started: list[aq.Run] = []
        sweep = [f"sweep-{i:02d}" for i in range(SWEEP)]
        for i, run_id in enumerate(sweep):
            started += _log_run(redis_server.url, data_dir, run_id, run_id, params={"lr": round(0.01 * (i + 1), 4)})
        started += _log_run(
            redis_server.url, data_dir, "ddp-run", "ddp-run", world_size=2, steps=DDP_STEPS, experiment="ddp"
        )
        for run in started:
            run.finish(timeout=30.0)
        with Api(data_dir) as api:
            wait_until(
                lambda: (
                    api.search(filter='status == "completed"').total == SWEEP + 1
                    and api.run("ddp-run")["metrics"]["loss"]["count"] == 2 * DDP_STEPS
                ),
                "the sweep and the ddp run are stored and completed",
            )
            # the newest run, logged once the others are stored: it heads the list
            for run in _log_run(redis_server.url, data_dir, "xss-run", XSS_NAME, experiment="names"):
                run.finish(timeout=30.0)
            total = SWEEP + 2
            wait_until(lambda: api.search(filter='status == "completed"').total == total, "the xss run is stored")
        yield Seeded(data_dir, redis_server.url, sweep, "ddp-run", "xss-run", total), collector


@pytest.fixture(scope="module")
def served(seeded: tuple[Seeded, CollectorThread]) -> Iterator[Served]:
    from aquarium.ui import UiServer, UiSettings, dashboard_for

    data, collector = seeded
    server = UiServer(dashboard_for(str(data.data_dir), data.redis_url), UiSettings(port=0)).start()
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    yield Served(server.url, data, collector)
    server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright_api.sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        yield chromium
        chromium.close()


@dataclass
class Watched:
    """What a page did that a test must not allow."""

    errors: list[str] = field(default_factory=list)

    def check(self) -> None:
        assert not self.errors, "the page reported:\n" + "\n".join(self.errors)


@pytest.fixture
def page(browser: Any, served: Served) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1400, "height": 950})
    tab = context.new_page()
    watched = Watched()
    tab.on("console", lambda m: watched.errors.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
    tab.on("pageerror", lambda e: watched.errors.append(f"uncaught: {e}"))
    tab.on("dialog", lambda d: (watched.errors.append(f"dialog: {d.message}"), d.dismiss()))

    def outside(request: Any) -> None:
        if not request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:http://127.0.0.1")):
            watched.errors.append(f"request leaves the machine: {request.url}")

    tab.on("request", outside)
    yield tab
    context.close()
    watched.check()


@pytest.fixture
def screenshot(tmp_path: Path, request: pytest.FixtureRequest) -> Any:
    def take(page: Any, name: str) -> Path:
        path = tmp_path / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        SHOTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, SHOTS / path.name)
        return path

    return take


# -- page helpers ----------------------------------------------------------------------------------
SOURCE_LENGTH = """(name) => {
    for (const doc of (window.Bokeh?.documents || [])) {
        const model = doc.get_model_by_name(name);
        if (model) return model.data.step.length;
    }
    return -1;
}"""

SOURCE_DATA = """(name) => {
    for (const doc of (window.Bokeh?.documents || [])) {
        const model = doc.get_model_by_name(name);
        if (model) {
            const out = {};
            for (const [k, v] of Object.entries(model.data)) out[k] = Array.from(v);
            return out;
        }
    }
    return null;
}"""


def source_length(page: Any, name: str) -> int:
    return int(page.evaluate(SOURCE_LENGTH, name))


def source_data(page: Any, name: str) -> dict[str, list[float]] | None:
    data: dict[str, list[float]] | None = page.evaluate(SOURCE_DATA, name)
    return data


def wait_for_source(page: Any, name: str, at_least: int = 1, timeout: float = 30_000) -> None:
    page.wait_for_function(f"(name) => ({SOURCE_LENGTH})(name) >= {at_least}", arg=name, timeout=timeout)


def open_page(page: Any, url: str) -> None:
    page.goto(url)
    page.wait_for_function("() => window.Bokeh && window.Bokeh.documents.length > 0", timeout=30_000)
