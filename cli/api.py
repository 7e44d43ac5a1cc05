"""`aquarium api`: the HTTP API over a data dir, on its own (without a collector)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

import click

from .options import data_dir_option, http_options, redis_options

if TYPE_CHECKING:
    from aquarium.collector import Collector
    from aquarium.collector.api import ApiServer


@click.command("api")
@data_dir_option
@http_options(port=8054)
@redis_options(default=None, help="Redis the collectors publish live updates on (for /api/runs/{id}/live).")
def api_command(data_dir: Path, http_host: str, http_port: int, redis_url: str | None, prefix: str) -> None:
    """Serve the store under DATA_DIR over HTTP (runs, series, /metrics) until Ctrl-C.

    Read-only data dirs work. With --redis-url, /api/runs/{id}/live streams new points as they
    are committed. On a non-loopback --http-host, AQUARIUM_API_TOKEN must be set and every
    request must send `Authorization: Bearer <token>`.
    """
    from aquarium.collector.api import ApiSettings, create_app, serve_forever
    from aquarium.collector.store import Store

    settings = replace(ApiSettings.from_env(host=http_host, port=http_port), redis_url=redis_url, prefix=prefix)
    settings.check_bind()
    if not (data_dir / "aquarium.db").exists():
        raise click.ClickException(f"no Aquarium store in {data_dir} (`aquarium up --data-dir {data_dir}` makes one)")
    store = Store(data_dir, read_only=True)
    try:
        serve_forever(
            create_app(store, settings), settings, ready=f"API on http://{http_host}:{http_port} ({data_dir})"
        )
    finally:
        store.close()


def start_beside(collector: Collector, http_host: str, http_port: int) -> ApiServer:
    """The API in a thread of the collector's process, over the collector's own store (it takes
    artifact uploads, so it is advertised in Redis for agents)."""
    from aquarium.collector.api import ApiServer, ApiSettings, create_app
    from aquarium.collector.api.prometheus import CollectorSource

    settings = ApiSettings.from_env(host=http_host, port=http_port)
    settings = replace(settings, redis_url=collector.settings.redis_url, prefix=collector.settings.prefix)
    app = create_app(collector.store, settings, counters=[CollectorSource(collector)])
    server = ApiServer(app, settings).start()
    collector.advertise_api(server.advertised_url)  # agents find where to upload artifacts
    return server
