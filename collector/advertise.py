"""Where agents upload artifacts: a collector serving the HTTP API advertises its URL in Redis.

A training job is configured with its Redis URL only; its agent reads ``HGET <prefix>:api url``
(unless ``AQUARIUM_API_URL`` is set) to find where to send artifact bytes. The collector writes
the hash when its API starts and rewrites it in its maintenance, with a TTL, so the entry of a
collector that died expires and a live sibling's takes over; a clean stop deletes the entry if
it is still this collector's. Only collectors advertise: their API owns the store's writer,
which uploads need (the standalone `aquarium api` is read-only).
"""

from __future__ import annotations

import socket
import time

import redis

from aquarium.agent.redis_keys import RedisKeys

API_URL_FIELD = "url"
ADVERTISE_TTL_SECONDS = 30.0

# delete the hash only while its url is still ours: a sibling may have advertised since
_WITHDRAW = """
if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then redis.call('DEL', KEYS[1]) end
return 0
"""


def api_key(keys: RedisKeys) -> str:
    """Hash ``url`` -> the HTTP API agents upload artifacts to (HSET by collectors, HGET by agents)."""
    return f"{keys.prefix}:api"


def reachable_host(bind: str) -> str:
    """The host other machines reach a server bound to ``bind`` at: ``bind`` itself, except for
    the every-interface addresses, for which it is this machine's primary address (the source
    address of its default route; no packet is sent), else its host name."""
    if bind not in ("", "0.0.0.0", "::"):
        return bind
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.connect(("192.0.2.1", 9))  # TEST-NET-1: only picks the route
            address = str(probe.getsockname()[0])
        except OSError:
            address = ""
    return address if address and not address.startswith("0.") else socket.gethostname()


def http_url(host: str, port: int) -> str:
    return f"http://{'[' + host + ']' if ':' in host else host}:{port}"


class ApiAdvertisement:
    """This collector's entry in ``<prefix>:api``, rewritten every ``ttl / 3`` seconds."""

    def __init__(self, client: redis.Redis, keys: RedisKeys, url: str, ttl: float = ADVERTISE_TTL_SECONDS) -> None:
        self.client, self.key, self.url, self.ttl = client, api_key(keys), url, ttl
        self._next = 0.0

    def publish(self, force: bool = False) -> bool:
        """Write the entry (if due, or ``force``); True when written. Raises Redis errors."""
        now = time.monotonic()
        if not force and now < self._next:
            return False
        pipe = self.client.pipeline(transaction=False)  # the collector's ACL user has no MULTI
        pipe.hset(self.key, API_URL_FIELD, self.url)
        pipe.expire(self.key, max(1, round(self.ttl)))
        pipe.execute()
        self._next = now + self.ttl / 3
        return True

    def withdraw(self) -> None:
        """Delete the entry at a clean stop, unless another collector has advertised since."""
        self.client.eval(_WITHDRAW, 1, self.key, API_URL_FIELD, self.url)
