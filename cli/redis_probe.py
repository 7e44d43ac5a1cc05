"""Asking "is Redis there?": one connection attempt, a short timeout, no retries.

redis-py's clients retry with backoff by default (a dozen connections and 7-15 s before a
port held by something that is not Redis was reported). That is right for shipping batches and
wrong for a question: `up`, `doctor`, `demo`, `sync`, `collector` and the test fixtures ask here.
"""

from __future__ import annotations

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

PROBE_TIMEOUT = 1.0


def connect(url: str, timeout: float = PROBE_TIMEOUT) -> redis.Redis:
    """A client that fails fast: each command is one attempt on one connection."""
    return redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(NoBackoff(), 0)
    )


def probe(url: str, timeout: float = PROBE_TIMEOUT) -> str | None:
    """None if Redis at ``url`` answers PING, else why not (one attempt, at most ~2 timeouts)."""
    failure = probe_failure(url, timeout)
    if failure is None:
        return None
    return str(failure) if isinstance(failure, ValueError) else f"{type(failure).__name__}: {failure}"


def probe_failure(url: str, timeout: float = PROBE_TIMEOUT) -> Exception | None:
    """None if Redis at ``url`` answers PING, else the error (ValueError for a malformed URL)."""
    try:
        client = connect(url, timeout)
    except ValueError as e:
        return e
    try:
        client.ping()
        return None
    except redis.RedisError as e:
        return e
    finally:
        client.close()


def port_url(port: int, host: str = "127.0.0.1") -> str:
    return f"redis://{host}:{port}/0"
