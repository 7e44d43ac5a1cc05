"""The application's typed keys (``web.AppKey``): what every handler may take from the app."""

from __future__ import annotations

import asyncio

import redis.asyncio
from aiohttp import web

from aquarium.collector.blobs import BlobStore
from aquarium.collector.store import Store

from . import prometheus
from .settings import ApiSettings

STORE = web.AppKey("store", Store)
BLOBS = web.AppKey("blobs", BlobStore)  # the artifact blobs under the store's data dir
SETTINGS = web.AppKey("settings", ApiSettings)
COUNTERS = web.AppKey("counters", list[prometheus.Source])
LIVE_REDIS = web.AppKey("live_redis", redis.asyncio.Redis)  # only when settings.redis_url is set
LIVE_STREAMS = web.AppKey("live_streams", set[asyncio.Event])  # set on shutdown: open streams end
