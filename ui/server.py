"""Serving the dashboard: in a thread beside other work (``UiServer``), or in the foreground.

Everything the page loads comes from this server (Panel serves Bokeh's and its own JS and CSS
from ``/static``): the dashboard works with no internet. Like the HTTP API, it listens on
127.0.0.1 by default; on an address other machines can reach it refuses to start without
``AQUARIUM_API_TOKEN``, and then asks every browser for that token as its password.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import panel as pn

from aquarium.agent.errors import AquariumError
from aquarium.collector import Api
from aquarium.collector.api.settings import TOKEN_VARIABLE, ApiConfigError, is_loopback

from .app import TITLE, Dashboard, create_app
from .artifacts import route as artifact_route
from .health import HealthMonitor
from .live import LiveHub
from .resources import install as install_resources

__all__ = ["DEFAULT_PORT", "UiServer", "UiSettings", "dashboard_for", "launch_aquarium", "serve_forever"]

log = logging.getLogger("aquarium.ui.server")

DEFAULT_PORT = 8053


@dataclass(frozen=True)
class UiSettings:
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT  # 0: any free port
    token: str | None = None  # the password browsers must give (required off loopback)

    @classmethod
    def from_env(cls, host: str = "127.0.0.1", port: int = DEFAULT_PORT, token: str | None = None) -> "UiSettings":
        return cls(host=host, port=port, token=token or os.environ.get(TOKEN_VARIABLE) or None)

    def check_bind(self) -> None:
        """Refuse a non-loopback address without a token: runs and params are not for everyone."""
        if not self.token and not is_loopback(self.host):
            raise ApiConfigError(
                f"refusing to serve the dashboard on {self.host}, which is reachable from other machines, "
                f"without a token: set {TOKEN_VARIABLE} (browsers then log in with it as the password), "
                "or listen on 127.0.0.1"
            )


def dashboard_for(target: str, redis_url: str | None, prefix: str = "aquarium", token: str | None = None) -> Dashboard:
    """The process-wide parts over ``target`` (a data dir or an API URL); not started yet."""
    source = target if target.startswith(("http://", "https://")) else str(Path(target).resolve())
    return Dashboard(
        Api(target, token=token), LiveHub(redis_url, prefix), HealthMonitor(redis_url, prefix), source, redis_url
    )


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host if host not in ("", "0.0.0.0") else "127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_options(settings: UiSettings, port: int, api: Api) -> dict[str, Any]:
    if is_loopback(settings.host):
        origins: list[str] | str = [f"127.0.0.1:{port}", f"localhost:{port}", f"{settings.host}:{port}"]
    else:
        origins = "*"  # any host name the machine is reached by; the password guards it
    install_resources()  # no MathJax bundle unless the page needs it
    options: dict[str, Any] = {
        "port": port,
        "address": settings.host,
        "websocket_origin": origins,
        "title": TITLE,
        "show": False,
        "verbose": False,  # the caller says where it listens
        "extra_patterns": [artifact_route(api)],  # downloads come from this origin, through this Api
        # gzip (3.9 MB of JS and CSS become 1 MB) where bytes cost time: over a network. On loopback
        # they cost nothing and compressing every response again costs CPU, so not there.
        "compress_response": not is_loopback(settings.host),
    }
    if settings.token:
        options |= {"basic_auth": settings.token, "cookie_secret": secrets.token_hex(32)}
    return options


class UiServer:
    """The dashboard served from a thread of its own: started, then stopped by its owner."""

    def __init__(self, dashboard: Dashboard, settings: UiSettings) -> None:
        settings.check_bind()
        self.dashboard, self.settings = dashboard, settings
        self.port = settings.port or _free_port(settings.host)
        self._thread: Any = None

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("", "0.0.0.0", "::") else self.settings.host
        return f"http://{host}:{self.port}/"

    def start(self) -> "UiServer":
        self.dashboard.start()
        options = _serve_options(self.settings, self.port, self.dashboard.api)
        self._thread = pn.serve(lambda: create_app(self.dashboard), threaded=True, **options)
        self._wait_listening()
        return self

    def _wait_listening(self, timeout: float = 30.0) -> None:
        """Return once the server accepts connections, so that the URL printed next works."""
        host = "127.0.0.1" if self.settings.host in ("", "0.0.0.0", "::") else self.settings.host
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection((host, self.port), timeout=1.0).close()
                return
            except OSError:
                if time.monotonic() > deadline or not self._thread.is_alive():
                    raise AquariumError(f"the dashboard did not start listening on {host}:{self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.stop()
            self._thread.join(10)
            self._thread = None
        self.dashboard.stop()


def serve_forever(dashboard: Dashboard, settings: UiSettings, say: Callable[[str], None] | None = None) -> None:
    """Serve in the foreground until Ctrl-C / SIGTERM; ``say`` gets the line with the URL."""
    settings.check_bind()
    port = settings.port or _free_port(settings.host)
    dashboard.start()
    try:
        server = pn.serve(lambda: create_app(dashboard), start=False, **_serve_options(settings, port, dashboard.api))
        server.start()  # listening from here: the URL said next works at once
        if say is not None:
            say(f"Aquarium dashboard on http://{settings.host}:{port}/ ({dashboard.api.target}); Ctrl-C stops")
        server.io_loop.start()
    finally:
        dashboard.stop()


def launch_aquarium(
    base_dir: str = "aquarium_data",
    port: int = DEFAULT_PORT,
    host: str = "127.0.0.1",
    debug: bool = False,
    *,
    api_url: str | None = None,
    redis_url: str | None = None,
    prefix: str = "aquarium",
) -> None:
    """The seed's entry point: serve the dashboard over ``base_dir`` (or ``api_url``) until Ctrl-C.

    Live curves need the Redis the collectors publish on (``redis_url``, else AQUARIUM_REDIS_URL);
    without one the views read the store as it is. ``debug`` logs what the dashboard does.
    """
    if debug:
        logging.getLogger("aquarium").setLevel(logging.DEBUG)
    redis_url = redis_url or os.environ.get("AQUARIUM_REDIS_URL") or None
    settings = UiSettings.from_env(host=host, port=port)
    settings.check_bind()
    dashboard = dashboard_for(api_url or base_dir, redis_url, prefix)
    serve_forever(dashboard, settings, say=_to_stderr)


def _to_stderr(line: str) -> None:
    sys.stderr.write(line + "\n")
