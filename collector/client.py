"""``Api``: the one way to read runs and series, from a data dir or from a collector's HTTP API.

``Api("aquarium_data")`` reads the store directly; ``Api("http://host:8054", token=...)`` asks
the HTTP API (series travel in the columnar form: exact values, no per-point JSON). Both answer
the same methods with the same types. pandas is imported only by the methods that return a
DataFrame.
"""

from __future__ import annotations

import hashlib
import http.client
import importlib.util
import json
import os
import ssl
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol
from urllib.parse import quote, urlencode, urlsplit

from aquarium.agent.artifact_names import artifact_name_problem
from aquarium.agent.errors import AquariumError, RunNotFoundError

from .columnar import CONTENT_TYPE as COLUMNS_TYPE
from .columnar import decode_window

if TYPE_CHECKING:
    import pandas as pd

    from .store import RunPage, Store, Window

PAGE = 1000  # runs per request when Api.runs() pages through everything
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


class DownloadError(AquariumError):
    """Raised when an artifact cannot be written where it was asked for, or arrived damaged."""


class Api:
    """Read runs, series and artifacts: ``Api("aquarium_data")``, ``Api("http://host:8054",
    token=...)``, or ``Api(store)`` over a Store this process has open (left open by ``close()``)."""

    def __init__(
        self, target: str | os.PathLike[str] | Store = "aquarium_data", token: str | None = None, timeout: float = 60.0
    ) -> None:
        from .store import Store

        if isinstance(target, Store):
            self.target = str(target.data_dir)
            self._backend: _Backend = _Local(target, owned=False)
            return
        text = os.fspath(target)
        self.target = text
        if text.startswith(("http://", "https://")):
            self._backend = _Http(text, token or os.environ.get("AQUARIUM_API_TOKEN"), timeout)
        else:
            self._backend = _Local.open(Path(text))

    # -- runs ----------------------------------------------------------------------------------
    def search(
        self, filter: str | None = None, sort: str | None = None, limit: int | None = None, offset: int = 0
    ) -> RunPage:
        """One page of runs as dicts (params, tags, metrics nested), with the total matching."""
        return self._backend.search_runs(filter, sort, limit, offset)

    def runs(
        self, filter: str | None = None, sort: str | None = None, limit: int | None = None, offset: int = 0
    ) -> pd.DataFrame:
        """Runs as a DataFrame, one row each: id, name, experiment, status, times, duration,
        ranks, ``params.<name>``, ``tags.<name>`` and ``metrics.<key>.{last,min,max}``."""
        rows: list[dict[str, Any]] = []
        while True:
            want = PAGE if limit is None else min(PAGE, limit - len(rows))
            page = self.search(filter, sort, want, offset + len(rows))
            rows += page.runs
            if not page.runs or len(rows) >= page.total or (limit is not None and len(rows) >= limit):
                break
        return runs_frame(rows)

    def run(self, run_id: str) -> dict[str, Any]:
        """Everything about one run but its points; RunNotFoundError if there is none."""
        return self._backend.get_run(run_id)

    def keys(self, run_id: str) -> list[str]:
        return self._backend.metric_keys(run_id)

    # -- series --------------------------------------------------------------------------------
    def series(
        self,
        run_id: str,
        key: str,
        *,
        rank: int | None = None,
        agg: str | None = None,
        samples: int | None = None,
        start: int | None = None,
        end: int | None = None,
        times: bool = True,
    ) -> Window:
        """One metric as numpy arrays (``.steps``, ``.values``; ``.min``/``.max`` for agg="all";
        ``.times`` for one rank unless ``times=False``, which reads a third less)."""
        return self._backend.read_window(
            run_id, key, rank=rank, agg=agg, samples=samples, start=start, end=end, times=times
        )

    def history(
        self,
        run_id: str,
        keys: Sequence[str] | None = None,
        *,
        rank: int | None = None,
        agg: str | None = None,
        samples: int | None = None,
        start: int | None = None,
        end: int | None = None,
    ) -> pd.DataFrame:
        """Metrics as a DataFrame indexed by step, one column per key (NaN where a key has no
        point at that step); agg="all" adds ``<key>.min`` and ``<key>.max`` columns."""
        _require_pandas()
        import pandas as pd

        columns: dict[str, pd.Series] = {}
        for key in keys if keys is not None else self.keys(run_id):
            w = self._backend.read_window(
                run_id, key, rank=rank, agg=agg, samples=samples, start=start, end=end, times=False
            )
            index = pd.Index(w.steps, name="step")
            columns[key] = pd.Series(w.values, index=index)
            if w.min is not None and w.max is not None:
                columns[f"{key}.min"] = pd.Series(w.min, index=index)
                columns[f"{key}.max"] = pd.Series(w.max, index=index)
        if not columns:
            return pd.DataFrame(index=pd.Index([], name="step", dtype="int64"))
        frame = pd.concat(columns, axis=1, sort=True)
        frame.index.name = "step"
        return frame

    # -- artifacts -----------------------------------------------------------------------------
    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The run's artifacts in the order logged: upload, name, kind, rank, size, sha256 (None
        while pending), step, framework, media_type, meta, logged_at, state (pending, stored, changed)."""
        return self._backend.artifacts(run_id)

    def download_artifact(
        self, run_id: str, name: str, dest: str | os.PathLike[str] = ".", rank: int | None = None
    ) -> Path:
        """Write the latest artifact ``name`` (of ``rank``, else of any rank) under the directory
        ``dest``, at its name's relative path; returns the file's path.

        The bytes go to a temporary file in ``dest``, are checked against the artifact's
        sha256, then renamed into place: a failed download leaves nothing, and a symlink at the
        target is replaced, never written through. A name that would leave ``dest`` is refused.
        Raises RunNotFoundError, ArtifactNotFoundError, ArtifactPendingError, DownloadError."""
        root = Path(dest)
        target = _target_under(root, name)
        root.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(prefix=".aquarium-download-", dir=root)
        try:
            with os.fdopen(fd, "wb") as out:
                sink = _Hashing(out)
                expected = self._backend.copy_artifact(run_id, name, rank, sink)
                out.flush()
                os.fsync(out.fileno())
            if sink.hexdigest() != expected:
                raise DownloadError(f"{name!r} arrived with sha256 {sink.hexdigest()}, not {expected}: not written")
            target.parent.mkdir(parents=True, exist_ok=True)
            target = _target_under(root, name)  # again: a directory on the way may be a symlink out of dest
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return target

    def open_artifact(self, run_id: str, name: str, rank: int | None = None) -> ArtifactStream:
        """The latest artifact ``name`` (of ``rank``, else of any rank) open for reading, with
        its media type, sha256 and size: for serving it on (the dashboard does), never held whole.
        Raises RunNotFoundError, ArtifactNotFoundError, ArtifactPendingError."""
        return self._backend.open_artifact(run_id, name, rank)

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        self._backend.close()

    def __enter__(self) -> "Api":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Api({self.target!r})"


class _Hashing:
    """A binary file that hashes what is written to it."""

    def __init__(self, out: IO[bytes]) -> None:
        self._out, self._hash = out, hashlib.sha256()

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        return self._out.write(data)

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def _target_under(dest: Path, name: str) -> Path:
    """``dest / name``, refused unless ``name`` is a valid artifact name and its directory
    (symlinks resolved) lies under ``dest``."""
    problem = artifact_name_problem(name)
    if problem is not None:
        raise DownloadError(f"not an artifact name {name!r}: {problem}")
    root = dest.resolve()
    target = root.joinpath(*name.split("/"))
    if not target.parent.resolve().is_relative_to(root):  # the file itself is replaced, never followed
        raise DownloadError(f"refusing to write {name!r}: it would land outside {root}")
    return target


TIME_COLUMNS = ("created_at", "updated_at", "started_at", "ended_at")


def runs_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    """Flatten search results: nested params, tags and metrics become dotted columns."""
    _require_pandas()
    import pandas as pd

    flat = []
    for row in rows:
        out = {k: v for k, v in row.items() if k not in ("params", "tags", "metrics")}
        out.update({f"params.{k}": _cell(v) for k, v in (row.get("params") or {}).items()})
        out.update({f"tags.{k}": v for k, v in (row.get("tags") or {}).items()})
        for key, summary in (row.get("metrics") or {}).items():
            for part in ("last", "min", "max"):
                value = summary.get(part)
                out[f"metrics.{key}.{part}"] = float("nan") if value is None else value
        flat.append(out)
    frame = pd.DataFrame(flat)
    for column in TIME_COLUMNS:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], unit="s", utc=True)
    return frame


def _cell(value: Any) -> Any:
    """A list or dict param stays one cell (its JSON text), not a column of objects pandas splits."""
    return json.dumps(value) if isinstance(value, (list, dict)) else value


def _require_pandas() -> None:
    if importlib.util.find_spec("pandas") is None:
        raise AquariumError("Api.runs() and Api.history() return DataFrames: pip install pandas")
