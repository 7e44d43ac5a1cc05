"""How the dashboard starts: `aquarium up` beside the collector (and `--no-ui`), `aquarium ui`,
`python -m aquarium.ui`, `launch_aquarium`; a public address without a token is refused."""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from ledger import wait_until

from aquarium.cli import cli
from aquarium.collector.api.settings import ApiConfigError
from aquarium.ui import UiServer, UiSettings, dashboard_for, launch_aquarium

AQUARIUM = [sys.executable, "-P", "-c", "from aquarium.cli import main; main()"]


class Process:
    """A command whose output lines a reader thread collects."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        env.pop("AQUARIUM_REDIS_URL", None)
        self.process = subprocess.Popen(
            args, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.process.stdout.close()

    def wait_for(self, pattern: str) -> re.Match[str]:
        def found() -> re.Match[str] | None:
            while not self.lines.empty():
                self.seen.append(self.lines.get())
            return next((m for line in self.seen if (m := re.search(pattern, line))), None)

        match: re.Match[str] = wait_until(found, lambda: f"{pattern!r} never printed:\n{''.join(self.seen)}", 60)
        return match

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._reader.join(10)


@pytest.fixture
def processes() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for process in started:
        process.stop()


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=30) as response:
        return str(response.read().decode())


def test_up_starts_the_dashboard_beside_the_collector_and_prints_its_url(
    tmp_path: Path, processes: list[Process]
) -> None:
    up = Process([*AQUARIUM, "up", "--port", "0", "--ui-port", "0", "--data-dir", "data"], cwd=tmp_path)
    processes.append(up)
    url = up.wait_for(r"dashboard on (http://\S+)").group(1)
    up.wait_for("Ctrl-C stops")
    page = fetch(url)
    assert "<title>Aquarium</title>" in page
    assert "https://" not in re.sub(r"https://(www\.w3\.org|github\.com)[^\"' ]*", "", page)  # nothing from a CDN
    up.stop()
    assert up.process.returncode == 0


def test_up_no_ui_serves_no_dashboard(tmp_path: Path, processes: list[Process]) -> None:
    up = Process([*AQUARIUM, "up", "--port", "0", "--no-ui", "--data-dir", "data"], cwd=tmp_path)
    processes.append(up)
    up.wait_for("Ctrl-C stops")
    assert not any("dashboard" in line for line in up.seen)


def test_ui_serves_a_data_dir(tmp_path: Path, processes: list[Process], data_dir: Path) -> None:
    from aquarium.collector import Store

    Store(data_dir).close()
    ui = Process([*AQUARIUM, "ui", "--port", "0", "--data-dir", str(data_dir)], cwd=tmp_path)
    processes.append(ui)
    url = ui.wait_for(r"dashboard on (http://\S+)/ ").group(1)
    assert "<title>Aquarium</title>" in fetch(url)


def test_python_m_aquarium_ui_takes_the_same_options(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-P", "-m", "aquarium.ui", "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path
    )
    assert result.returncode == 0
    for option in ("--port", "--host", "--base-dir", "--api", "--redis"):
        assert option in result.stdout


def test_ui_without_a_store_says_so(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["ui", "--data-dir", str(tmp_path / "nothing")])
    assert result.exit_code == 1
    assert "no Aquarium store in" in result.output


@pytest.mark.parametrize("command", [["ui"], ["up", "--port", "0", "--ui-host"]])
def test_a_public_address_without_a_token_is_refused(tmp_path: Path, command: list[str]) -> None:
    args = [*command, "0.0.0.0"] if command[0] == "up" else ["ui", "--host", "0.0.0.0"]
    result = CliRunner().invoke(cli, [*args, "--data-dir", str(tmp_path / "data")])
    assert result.exit_code == 1
    assert "refusing to serve" in result.output and "AQUARIUM_API_TOKEN" in result.output


def test_launch_aquarium_refuses_a_public_address_without_a_token(tmp_path: Path) -> None:
    with pytest.raises(ApiConfigError, match="refusing to serve the dashboard on 0.0.0.0"):
        launch_aquarium(base_dir=str(tmp_path), port=8080, host="0.0.0.0", debug=True)


def test_a_token_makes_browsers_log_in(data_dir: Path) -> None:
    from aquarium.collector import Store

    Store(data_dir).close()
    server = UiServer(dashboard_for(str(data_dir), None), UiSettings(port=0, token="s3cret")).start()
    try:

        def refused() -> bool:
            try:
                urllib.request.urlopen(urllib.request.Request(server.url), timeout=10)
            except urllib.error.HTTPError as e:
                return e.code in (302, 401, 403)
            except urllib.error.URLError:
                return False
            return "login" in fetch(server.url).lower()

        assert wait_until(refused, "the page asks for the token")
    finally:
        server.stop()
