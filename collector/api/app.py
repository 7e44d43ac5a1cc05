"""The API's application factory and the server that runs it, in a thread or in the foreground.

``create_app(store, settings)`` is what tests drive with aiohttp's test client; ``ApiServer``
serves it from the collector process (beside the consumer loop, on its own event loop thread)
and ``serve_forever`` from `aquarium api`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Iterable

import redis.asyncio
from aiohttp import web
from aiohttp.typedefs import Middleware

from aquarium.collector.advertise import http_url, reachable_host
from aquarium.collector.blobs import BlobStore
from aquarium.collector.store import Store

from . import prometheus
from .artifacts import artifact_routes
from .auth import token_middleware
from .errors import json_errors
from .keys import BLOBS, COUNTERS, LIVE_REDIS, LIVE_STREAMS, SETTINGS, STORE
from .routes import routes
from .settings import ApiConfigError, ApiSettings

log = logging.getLogger("aquarium.collector.api")


def create_app(
    store: Store, settings: ApiSettings | None = None, counters: Iterable[prometheus.Source] = ()
) -> web.Application:
    """The API over ``store``; ``counters`` add to the store's own samples on ``/metrics``."""
    settings = settings or ApiSettings()
    middlewares: list[Middleware] = [json_errors]
    if settings.token:
        middlewares.append(token_middleware(settings.token))
    # client_max_size bounds request.read() (JSON bodies); uploads stream request.content instead
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024)
    app[STORE] = store
    app[BLOBS] = BlobStore(store.data_dir)
    app[SETTINGS] = settings
    app[COUNTERS] = [prometheus.store_samples(store), *counters]
    app[LIVE_STREAMS] = set()
    if settings.redis_url:
        app.cleanup_ctx.append(_live_redis)
    app.on_shutdown.append(_end_live_streams)
    app.add_routes(artifact_routes)
    app.add_routes(routes)
    if not store.read_only:
        app.on_startup.append(_sweep_blob_temp)
    app.on_response_prepare.append(_no_sniffing)
    return app


async def _live_redis(app: web.Application) -> AsyncIterator[None]:
    """One client for the live streams (each subscribes on a connection of its own)."""
    url = app[SETTINGS].redis_url
    assert url is not None
    client = redis.asyncio.Redis.from_url(url, socket_connect_timeout=5.0)
    app[LIVE_REDIS] = client
    yield
    await client.aclose()


async def _sweep_blob_temp(app: web.Application) -> None:
    """Temporary files of uploads a crash interrupted are removed when a writer's API starts."""
    removed = await asyncio.to_thread(app[BLOBS].sweep_temp)
    if removed:
        log.info("removed %d stale temporary upload files", removed)


async def _end_live_streams(app: web.Application) -> None:
    """Open event streams end at shutdown, so that stopping the server does not wait for them."""
    for stop in app[LIVE_STREAMS]:
        stop.set()


async def _no_sniffing(request: web.Request, response: web.StreamResponse) -> None:
    """Names containing HTML are data: browsers must never render a JSON answer as a page."""
    response.headers["X-Content-Type-Options"] = "nosniff"


def _runner(app: web.Application, settings: ApiSettings) -> web.AppRunner:
    limit = settings.max_url_chars
    return web.AppRunner(app, access_log=None, max_line_size=limit, max_field_size=limit)


class ApiServer:
    """The API served from a thread of its own: started, then stopped (by the owner)."""

    def __init__(self, app: web.Application, settings: ApiSettings) -> None:
        settings.check_bind()
        self.settings = settings
        self._app = app
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="aquarium-api", daemon=True)
        self._runner = _runner(app, settings)
        self.port = settings.port

    @property
    def url(self) -> str:
        return http_url(self.settings.host, self.port)

    @property
    def advertised_url(self) -> str:
        """Where other machines reach this API: ``public_url`` if set, else the bound address
        (a wildcard bind is replaced by this machine's primary address)."""
        return self.settings.public_url or http_url(reachable_host(self.settings.host), self.port)

    def start(self) -> "ApiServer":
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=30)
        except OSError as e:
            self.stop()
            raise ApiConfigError(
                f"cannot serve the API on {self.settings.host}:{self.settings.port} ({e.strerror or e}); "
                "choose another --http-port"
            ) from e
        log.info("API on %s", self.url)
        return self

    async def _start(self) -> None:
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port)
        await site.start()
        self.port = _bound_port(self._runner, self.settings.port)

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(30)
        self._loop.close()

    def __enter__(self) -> "ApiServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _bound_port(runner: web.AppRunner, asked: int) -> int:
    for address in runner.addresses:  # (host, port) or (host, port, flow, scope)
        if isinstance(address, tuple) and len(address) >= 2:
            return int(address[1])
    return asked


def serve_forever(app: web.Application, settings: ApiSettings, ready: str = "") -> None:
    """Serve in the foreground until SIGINT/SIGTERM (aiohttp's own signal handling)."""
    settings.check_bind()
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        print=(lambda _: print(ready, flush=True)) if ready else None,
        access_log=None,
        handler_args={"max_line_size": settings.max_url_chars, "max_field_size": settings.max_url_chars},
    )
