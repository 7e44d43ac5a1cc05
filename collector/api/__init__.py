"""The collector's HTTP API: runs, series and the collector's counters over aiohttp."""

from __future__ import annotations

from .app import ApiServer, create_app, serve_forever
from .settings import ApiConfigError, ApiSettings, is_loopback

__all__ = ["ApiConfigError", "ApiServer", "ApiSettings", "create_app", "is_loopback", "serve_forever"]
