"""The artifact upload protocol, client side: hash, link, PUT (see the artifacts contract).

Standard library only (``http.client``, ``ssl`` for https). Files are read in 1 MiB pieces into
one reused buffer, never whole; ``hashlib`` and socket writes release the GIL for such pieces,
so the training thread keeps running while a large file moves. Every answer is classified
into one of three outcomes the uploader acts on: done, retry later (connection errors, 5xx,
404 for a run the store does not know yet), or refused for good (400, 413, 401/403).
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import select
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

CHUNK = 1 << 20
TIMEOUT = 60.0
Progress = Callable[[int], None]


class RetryLater(Exception):
    """Worth trying again after a backoff: the collector is away, busy, or does not know the run yet."""


class Refused(Exception):
    """The collector refused this upload; trying the same again cannot succeed."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code, self.message = status, code, message
        super().__init__(f"HTTP {status} {code}: {message}")


class ContentChanged(Exception):
    """The bytes sent are not the bytes hashed (the file changed meanwhile): hash again."""


@dataclass(frozen=True)
class FileHash:
    sha256: str
    size: int
    mtime_ns: int
    stable: bool  # size and mtime were the same before and after the pass


@dataclass(frozen=True)
class Endpoint:
    """Where the HTTP API is: scheme, host, port and the base path every route hangs under."""

    url: str
    token: str = ""

    def connection(self, timeout: float = TIMEOUT) -> http.client.HTTPConnection:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise Refused(0, "bad_api_url", f"not an http(s) URL: {self.url!r}")
        if parts.scheme == "https":
            return http.client.HTTPSConnection(
                parts.hostname, parts.port, timeout=timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(parts.hostname, parts.port, timeout=timeout)

    def path(self, run: str, upload: str, what: str) -> str:
        base = urlsplit(self.url).path.rstrip("/")
        return f"{base}/api/runs/{run}/artifacts/{upload}/{what}"

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def hash_file(path: str, progress: Progress | None = None) -> FileHash:
    """sha256 of the file in one streaming pass, with its size and mtime around the pass."""
    digest = hashlib.sha256()
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    total = 0
    with open(path, "rb", buffering=0) as f:
        before = os.fstat(f.fileno())
        while True:
            n = f.readinto(buffer)
            if not n:
                break
            digest.update(view[:n])
            total += n
            if progress is not None:
                progress(n)
        after = os.fstat(f.fileno())
    same_stat = (before.st_size, before.st_mtime_ns) == (after.st_size, after.st_mtime_ns)
    stable = same_stat and after.st_size == total
    return FileHash(digest.hexdigest(), total, after.st_mtime_ns, stable)


def link(endpoint: Endpoint, run: str, upload: str, sha256: str, size: int, changed: bool) -> str | None:
    """The collector's state for this upload if it already holds the bytes, else None (PUT them)."""
    body = json.dumps({"sha256": sha256, "size": size, "changed": changed}).encode()
    headers = {**endpoint.headers(), "Content-Type": "application/json", "Content-Length": str(len(body))}
    conn = endpoint.connection()
    try:
        status, answer = _exchange(conn, "POST", endpoint.path(run, upload, "link"), headers, body)
    finally:
        conn.close()
    if status == 404 and answer.get("code") == "blob_missing":
        return None
    return _state(status, answer)


def put(
    endpoint: Endpoint,
    run: str,
    upload: str,
    path: str,
    sha256: str,
    size: int,
    changed: bool,
    progress: Progress | None = None,
) -> str:
    """Stream ``size`` bytes of ``path`` with their sha256; the collector's state when stored."""
    headers = {
        **endpoint.headers(),
        "Content-Type": "application/octet-stream",
        "Content-Length": str(size),
        "X-Aquarium-Sha256": sha256,
    }
    if changed:
        headers["X-Aquarium-Changed"] = "1"
    conn = endpoint.connection()
    try:
        conn.putrequest("PUT", endpoint.path(run, upload, "content"), skip_accept_encoding=True)
        for key, value in headers.items():
            conn.putheader(key, value)
        try:
            conn.endheaders()
            _send_file(conn, path, size, progress)
        except ContentChanged:
            raise  # the connection closes unfinished: the server drops the partial body
        except _AnsweredEarly:
            pass  # read below
        except (OSError, http.client.HTTPException) as e:
            # The server may have answered before reading the body (413 on Content-Length).
            try:
                status, answer = _response(conn)
            except (OSError, http.client.HTTPException, ValueError):
                raise RetryLater(f"sending the file failed ({type(e).__name__}: {e})") from e
            return _state(status, answer)
        status, answer = _response(conn)
    except (OSError, http.client.HTTPException) as e:
        raise RetryLater(f"{type(e).__name__}: {e}") from e
    finally:
        conn.close()
    if status == 400 and answer.get("code") in ("sha256_mismatch", "truncated"):
        raise ContentChanged(str(answer.get("error", answer.get("code"))))
    return _state(status, answer)


class _AnsweredEarly(Exception):
    """The server answered before the body was complete (413 on Content-Length): stop sending."""


def _send_file(conn: http.client.HTTPConnection, path: str, size: int, progress: Progress | None) -> None:
    buffer = bytearray(CHUNK)
    view = memoryview(buffer)
    left = size
    # On plain HTTP, a readable socket mid-body is the server's answer. (Over TLS, session
    # tickets make the socket readable too, so there the body is sent whole.)
    sock = conn.sock if not isinstance(conn.sock, ssl.SSLSocket) else None
    with open(path, "rb", buffering=0) as f:
        while left:
            n = f.readinto(view[: min(CHUNK, left)])
            if not n:
                raise ContentChanged(f"the file is {size - left} bytes now, {size} when it was hashed")
            conn.send(view[:n])
            left -= n
            if progress is not None:
                progress(n)
            if sock is not None and left and select.select([sock], [], [], 0)[0]:
                raise _AnsweredEarly()


def _exchange(
    conn: http.client.HTTPConnection, method: str, path: str, headers: dict[str, str], body: bytes
) -> tuple[int, dict[str, Any]]:
    try:
        conn.request(method, path, body=body, headers=headers)
        return _response(conn)
    except (OSError, http.client.HTTPException) as e:
        raise RetryLater(f"{type(e).__name__}: {e}") from e


def _response(conn: http.client.HTTPConnection) -> tuple[int, dict[str, Any]]:
    response = conn.getresponse()
    raw = response.read(1 << 16)
    try:
        answer = json.loads(raw) if raw else {}
    except ValueError:
        answer = {"error": raw[:200].decode("utf-8", "replace")}
    return response.status, answer if isinstance(answer, dict) else {"error": str(answer)[:200]}


def _state(status: int, answer: dict[str, Any]) -> str:
    """The stored state for a success, else the exception the status calls for."""
    if status in (200, 201):
        state = answer.get("state")
        return state if isinstance(state, str) else "stored"
    code = str(answer.get("code", ""))
    message = str(answer.get("error", answer.get("message", "")))[:500]
    if status == 404 or status == 408 or status == 429 or status >= 500:
        raise RetryLater(f"HTTP {status} {code}: {message}".strip())
    if status in (401, 403):
        raise Refused(status, code or "unauthorized", message or "set AQUARIUM_API_TOKEN to the API's token")
    raise Refused(status, code or "refused", message)
