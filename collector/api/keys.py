"""The application's typed keys (``web.AppKey``): what every handler may take from the app."""

from __future__ import annotations

from aiohttp import web

from aquarium.collector.store import Store

from . import prometheus
from .settings import ApiSettings

STORE = web.AppKey("store", Store)
SETTINGS = web.AppKey("settings", ApiSettings)
COUNTERS = web.AppKey("counters", list[prometheus.Source])
