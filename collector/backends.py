"""The two ways ``Api`` reads: ``_Local`` (a read-only ``Store`` on a data dir) and ``_Http`` (a
collector's HTTP API over one kept-alive connection, series in the columnar form), answering the
same ``_Backend`` calls with the same types; HTTP errors come back as the local exceptions.
"""

from __future__ import annotations

import http.client
import json
import os
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from aquarium.agent.errors import AquariumError, RunNotFoundError

from .columnar import CONTENT_TYPE as COLUMNS_TYPE
from .columnar import decode_window

if TYPE_CHECKING:
    from .store import RunPage, Store, Window


CHUNK = 1 << 20  # artifact bytes are copied in pieces this large, never whole


class ApiError(AquariumError):
    """The HTTP API answered with an error this client has no more specific exception for."""

    def __init__(self, status: int, code: str, reason: str) -> None:
        self.status, self.code, self.reason = status, code, reason
        super().__init__(f"HTTP {status} ({code}): {reason}")


class _Sink(Protocol):
    def write(self, data: bytes, /) -> int: ...


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...
    def close(self) -> None: ...


class _Response:
    """An HTTP answer's body that closes its connection with it."""

    def __init__(self, conn: http.client.HTTPConnection, response: http.client.HTTPResponse) -> None:
        self._conn, self._response = conn, response

    def read(self, size: int = -1, /) -> bytes:
        return self._response.read(None if size < 0 else size)

    def close(self) -> None:
        self._response.close()
        self._conn.close()


@dataclass
class ArtifactStream:
    """An artifact's bytes open for reading (``Api.open_artifact``): close it, or use ``with``."""

    stream: _Readable
    media_type: str
    sha256: str
    size: int

    def read(self, size: int = -1) -> bytes:
        return self.stream.read(size)

    def close(self) -> None:
        self.stream.close()

    def __enter__(self) -> "ArtifactStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Backend(Protocol):
    def search_runs(self, filter: str | None, sort: str | None, limit: int | None, offset: int) -> RunPage: ...
    def get_run(self, run_id: str) -> dict[str, Any]: ...
    def metric_keys(self, run_id: str) -> list[str]: ...
    def read_window(self, run_id: str, key: str, **options: Any) -> Window: ...
    def artifacts(self, run_id: str) -> list[dict[str, Any]]: ...
    def copy_artifact(self, run_id: str, name: str, rank: int | None, out: _Sink) -> str: ...
    def open_artifact(self, run_id: str, name: str, rank: int | None) -> ArtifactStream: ...
    def close(self) -> None: ...


class _Local:
    """A store: the one under a data dir (opened read-only, closed with the Api), or one this
    process already has open (the collector's, which the API serves)."""

    def __init__(self, store: Store, owned: bool) -> None:
        self.store, self._owned = store, owned

    @classmethod
    def open(cls, data_dir: Path) -> "_Local":
        from .store import Store

        if not (data_dir / "aquarium.db").exists():
            raise AquariumError(f"no Aquarium store in {data_dir} (start one with `aquarium up --data-dir {data_dir}`)")
        return cls(Store(data_dir, read_only=True), owned=True)

    def search_runs(self, filter: str | None, sort: str | None, limit: int | None, offset: int) -> RunPage:
        return self.store.search_runs(filter, sort, limit, offset)

    def get_run(self, run_id: str) -> dict[str, Any]:
        return self.store.get_run(run_id)

    def metric_keys(self, run_id: str) -> list[str]:
        return self.store.metric_keys(run_id)

    def read_window(self, run_id: str, key: str, **options: Any) -> Window:
        return self.store.read_window(run_id, key, **options)

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return self.store.artifacts(run_id)

    def copy_artifact(self, run_id: str, name: str, rank: int | None, out: _Sink) -> str:
        from .blobs import BlobStore

        sha256 = str(self.store.artifact(run_id, name, rank)["sha256"])
        with BlobStore(self.store.data_dir).open(sha256) as blob:
            while chunk := blob.read(CHUNK):
                out.write(chunk)
        return sha256

    def open_artifact(self, run_id: str, name: str, rank: int | None) -> ArtifactStream:
        from .blobs import BlobStore

        found = self.store.artifact(run_id, name, rank)
        blob = BlobStore(self.store.data_dir).open(str(found["sha256"]))
        return ArtifactStream(blob, str(found["media_type"]), str(found["sha256"]), os.fstat(blob.fileno()).st_size)

    def close(self) -> None:
        if self._owned:
            self.store.close()


class _Http:
    """The HTTP API over one kept-alive connection (reopened when the server closed it)."""

    def __init__(self, url: str, token: str | None, timeout: float) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise AquariumError(f"not an http(s) URL: {url!r}")
        self._parts = parts
        self._base = parts.path.rstrip("/")
        self._timeout = timeout
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            self._conn = self._new_connection()
        return self._conn

    def _new_connection(self) -> http.client.HTTPConnection:
        p = self._parts
        if p.scheme == "https":
            return http.client.HTTPSConnection(
                p.hostname or "", p.port, timeout=self._timeout, context=ssl.create_default_context()
            )
        return http.client.HTTPConnection(p.hostname or "", p.port, timeout=self._timeout)

    def _get(self, path: str, query: dict[str, Any] | None = None, accept: str = "application/json") -> bytes:
        params = {k: v for k, v in (query or {}).items() if v is not None}
        target = self._base + path + ("?" + urlencode(params) if params else "")
        for attempt in (0, 1):  # a kept-alive connection the server closed fails once: reopen
            conn = self._connection()
            try:
                conn.request("GET", target, headers={**self._headers, "Accept": accept})
                response = conn.getresponse()
                body = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                if attempt:
                    raise
                continue
            except OSError:
                self.close()
                raise
            if response.status >= 400:
                raise _error(response.status, body)
            return body
        raise AssertionError("unreachable")

    def _json(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return json.loads(self._get(path, query))

    def _copy(self, path: str, query: dict[str, Any], out: _Sink) -> str:
        """GET ``path`` into ``out`` piece by piece; returns the ETag. The connection is closed
        unless the whole body was read (a half-read answer would corrupt the next one)."""
        params = {k: v for k, v in query.items() if v is not None}
        target = self._base + path + ("?" + urlencode(params) if params else "")
        conn = self._connection()
        complete = False
        try:
            conn.request("GET", target, headers=self._headers)
            response = conn.getresponse()
            if response.status >= 400:
                body = response.read()
                complete = True
                raise _error(response.status, body)
            while chunk := response.read(CHUNK):
                out.write(chunk)
            complete = True
            return str(response.getheader("ETag", "")).strip('"')
        finally:
            if not complete:
                self.close()

    def search_runs(self, filter: str | None, sort: str | None, limit: int | None, offset: int) -> RunPage:
        from .store import RunPage

        answer = self._json("/api/runs", {"filter": filter, "sort": sort, "limit": limit, "offset": offset})
        return RunPage(answer["runs"], int(answer["total"]))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self._json(f"/api/runs/{quote(run_id, safe='')}"))

    def metric_keys(self, run_id: str) -> list[str]:
        return list(self._json(f"/api/runs/{quote(run_id, safe='')}/keys")["keys"])

    def read_window(self, run_id: str, key: str, **options: Any) -> Window:
        from .store.window import check_arguments

        times = options.pop("times", True)
        check_arguments(options["rank"], options["agg"], options["samples"], options["start"], options["end"])
        path = f"/api/runs/{quote(run_id, safe='')}/series/{quote(key, safe='')}"
        query = {**options, "format": "columns", "times": None if times else "0"}
        return decode_window(self._get(path, query, accept=COLUMNS_TYPE))

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        return list(self._json(f"/api/runs/{quote(run_id, safe='')}/artifacts")["artifacts"])

    def copy_artifact(self, run_id: str, name: str, rank: int | None, out: _Sink) -> str:
        path = f"/api/runs/{quote(run_id, safe='')}/artifacts/{quote(name, safe='/')}"
        return self._copy(path, {"rank": rank}, out)

    def open_artifact(self, run_id: str, name: str, rank: int | None) -> ArtifactStream:
        """On a connection of its own (the kept-alive one stays free for other reads while the
        caller reads the body); closing the stream closes it."""
        path = f"/api/runs/{quote(run_id, safe='')}/artifacts/{quote(name, safe='/')}"
        target = self._base + path + (f"?rank={rank}" if rank is not None else "")
        conn = self._new_connection()
        try:
            conn.request("GET", target, headers=self._headers)
            response = conn.getresponse()
            if response.status >= 400:
                raise _error(response.status, response.read())
        except BaseException:
            conn.close()
            raise
        return ArtifactStream(
            _Response(conn, response),
            str(response.getheader("Content-Type", "application/octet-stream")),
            str(response.getheader("ETag", "")).strip('"'),
            int(response.getheader("Content-Length", "0")),
        )

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _error(status: int, body: bytes) -> AquariumError:
    """The server's JSON error as the exception a local read would have raised."""
    try:
        answer = json.loads(body)
        code, reason = str(answer.get("code", "")), str(answer.get("error", ""))
    except (ValueError, AttributeError):
        return ApiError(status, "http", body[:200].decode(errors="replace"))
    if code in ("unknown_run", "run_not_found"):
        return RunNotFoundError(str(answer.get("run", reason)))
    if code in ("unknown_artifact", "artifact_pending"):
        from .store import ArtifactNotFoundError, ArtifactPendingError

        run, name, rank = str(answer.get("run")), str(answer.get("name")), answer.get("rank")
        if code == "unknown_artifact":
            return ArtifactNotFoundError(run, name, rank)
        return ArtifactPendingError(run, name, rank)
    if code == "unknown_key":
        from .store import KeyNotFoundError

        return KeyNotFoundError(str(answer.get("run")), str(answer.get("key")), answer.get("rank"))

    if code == "bad_query":
        from .query import QueryError

        return QueryError(
            str(answer.get("query", "")), int(answer.get("position", 0)), str(answer.get("reason", reason))
        )
    return ApiError(status, code, reason)
