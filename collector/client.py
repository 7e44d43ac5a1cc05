"""``Api``: the one way to read runs and series, from a data dir or from a collector's HTTP API.

``Api("aquarium_data")`` reads the store directly; ``Api("http://host:8054", token=...)`` asks
the HTTP API (series travel in the columnar form: exact values, no per-point JSON). Both answer
the same methods with the same types. pandas is imported only by the methods that return a
DataFrame.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from aquarium.agent.artifact_names import artifact_name_problem
from aquarium.agent.errors import AquariumError

if TYPE_CHECKING:
    import pandas as pd

    from .store import RunPage, Store, Window

from .backends import ApiError, ArtifactStream, _Backend, _Http, _Local

__all__ = ["Api", "ApiError", "ArtifactStream", "DownloadError", "runs_frame"]

PAGE = 1000  # runs per request when Api.runs() pages through everything


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
