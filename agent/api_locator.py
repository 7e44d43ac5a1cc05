"""Where an upload goes: the collector's HTTP API, found from AQUARIUM_API_URL, the record's own
URL, or the URL a collector serving the API published in Redis (so a training job needs only
its Redis URL)."""

from __future__ import annotations

import redis

from . import env
from .artifact_http import Endpoint, RetryLater
from .pending_uploads import PendingUpload
from .redis_keys import RedisKeys

API_KEY_FIELD = "url"


def api_key(prefix: str) -> str:
    """Redis hash a collector serving the HTTP API writes: field ``url``."""
    return RedisKeys(prefix).api


class ApiLocator:
    """Where the API is: AQUARIUM_API_URL, the record's own, else what the collector published."""

    def __init__(self, socket_timeout: float = 2.0, url: str = "", redis_url: str = "") -> None:
        self._found: dict[tuple[str, str], str] = {}
        self._socket_timeout = socket_timeout
        self._url = url  # given explicitly (`aquarium sync --api-url`): wins over everything
        self._redis_url = redis_url  # where to look it up instead of the record's own Redis

    def endpoint(self, record: PendingUpload) -> Endpoint:
        token = env.API_TOKEN.get()
        url = self._url or env.API_URL.get() or record.api_url
        return Endpoint(url or self._published(self._redis_url or record.redis_url, record.prefix), token)

    @property
    def fixed(self) -> bool:
        return bool(self._url or env.API_URL.get())

    def forget(self, record: PendingUpload) -> None:
        """The URL did not answer: look it up again next time (the collector may have moved)."""
        self._found.pop((record.redis_url, record.prefix), None)

    def _published(self, redis_url: str, prefix: str) -> str:
        key = (redis_url, prefix)
        if key in self._found:
            return self._found[key]
        if not redis_url:
            raise RetryLater("no API URL: set AQUARIUM_API_URL (no Redis to look it up in)")
        try:
            client = redis.Redis.from_url(
                redis_url, socket_timeout=self._socket_timeout, socket_connect_timeout=self._socket_timeout
            )
            try:
                raw = client.hget(api_key(prefix), API_KEY_FIELD)
            finally:
                client.close()
        except redis.RedisError as e:
            raise RetryLater(f"looking up the API URL in Redis failed ({type(e).__name__}: {e})") from e
        if not raw:
            raise RetryLater(
                f"no collector serving the HTTP API has published its URL in {api_key(prefix)} "
                "(start one with `aquarium collector --http-port`, or set AQUARIUM_API_URL)"
            )
        url = raw.decode() if isinstance(raw, bytes) else str(raw)
        self._found[key] = url
        return url
