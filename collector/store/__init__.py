"""The store: SQLite (WAL) under a data directory. All SQL lives in this package.

    store = Store("aquarium_data")
    store.list_runs(); store.get_run(run_id)
    store.read_series(run_id, "loss", rank=0)      # numpy arrays, one value per step
    store.read_aggregate(run_id, "loss")           # mean/min/max across ranks per step

Writes go through one writer thread; reads use a connection per calling thread.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from aquarium.agent.spool import spool_files
from aquarium.agent.wire import Batch
from aquarium.collector.query import parse_filter, parse_sort

from . import artifacts as _artifacts
from . import compact as _compact
from . import reader
from . import window as _window
from .artifacts import ArtifactNotFoundError, ArtifactPendingError, UploadConflictError
from .errors import KeyNotFoundError, WindowError
from .ingest import IngestResult, ingest
from .ledger import conflict_reason
from .reader import Aggregate, Series
from .schema import DB_NAME, ReadOnlyStoreError, check_current, connect, connect_read_only, is_writable
from .search import RunPage, search
from .spool_ingest import SpoolIngestReport, ingest_spool_dir
from .window import Window
from .writer import Writer

__all__ = [
    "Aggregate",
    "ArtifactNotFoundError",
    "ArtifactPendingError",
    "IngestResult",
    "KeyNotFoundError",
    "ReadOnlyStoreError",
    "RunPage",
    "Series",
    "SpoolIngestReport",
    "Store",
    "UploadConflictError",
    "Window",
    "WindowError",
    "conflict_reason",
]

T = TypeVar("T")


class Store:
    """The store under ``data_dir``. Opening it only opens it: spool files are ingested by
    ``ingest_spool()``.

    ``read_only=None`` opens it read-only when this process may not write the directory (a
    colleague's results, a read-only mount); ``read_only=False`` raises ReadOnlyStoreError there
    instead. A read-only store can be read as it is; each write raises ReadOnlyStoreError.
    """

    def __init__(self, data_dir: str | Path = "aquarium_data", *, read_only: bool | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / DB_NAME
        self.spool_dir = self.data_dir / "spool"
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        writable = is_writable(self.data_dir)
        if read_only is False and not writable:
            raise ReadOnlyStoreError(self.path, "open it for writing")
        self.read_only = not writable if read_only is None else read_only
        self._writer: Writer | None = None
        if self.read_only:
            if not self.path.exists():
                raise ReadOnlyStoreError(self.path, "create it (there is no store there yet)")
            try:
                check_current(self._reader(), self.path)
            except BaseException:
                self.close()  # a reader left open would keep the data dir busy
                raise
        else:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            self._writer = Writer(self.path)

    def _write(self, action: str, fn: Callable[[sqlite3.Connection], T], transaction: bool = True) -> T:
        if self._writer is None:
            raise ReadOnlyStoreError(self.path, action)
        return self._writer.execute(fn, transaction=transaction)

    # -- writes --------------------------------------------------------------------------------
    def ingest(self, batches: Iterable[Batch]) -> IngestResult:
        """Store batches in one transaction; batches already in the ledger are skipped."""
        items = list(batches)
        return self._write("ingest batches", lambda conn: ingest(conn, items))

    def compact(self, everything: bool = False) -> int:
        """Merge small settled chunks; returns how many chunk rows were removed."""
        minimum = 2 if everything else _compact.COMPACT_AT_SMALL_CHUNKS
        removed = 0
        candidates = self._write(
            "compact", lambda conn: _compact.series_needing_compaction(conn, minimum), transaction=False
        )
        for series_id in candidates:
            removed += self._write("compact", partial(_compact.compact_series, series_id=series_id))
        return removed

    def ingest_spool(
        self, spool_dir: str | Path | None = None, delete: bool = True, include_live: bool = True
    ) -> SpoolIngestReport:
        """Ingest spool files (default: this data dir's spool) through the ledger.

        Finished files are deleted once committed; files a live agent still writes are read
        (the ledger makes re-reading harmless) and kept, or skipped with ``include_live=False``.
        """
        if self._writer is None:
            raise ReadOnlyStoreError(self.path, "ingest spool files")
        return ingest_spool_dir(
            Path(spool_dir) if spool_dir else self.spool_dir, self.ingest, delete=delete, include_live=include_live
        )

    def delete_run(self, run_id: str) -> bool:
        """Remove a run and its points. Its ledger stays, so redelivered batches do not revive it."""

        def delete(conn: sqlite3.Connection) -> bool:
            found = conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0
            conn.execute("DELETE FROM chunks WHERE series_id IN (SELECT id FROM series WHERE run_id = ?)", (run_id,))
            for table in ("series", "params", "tags", "status_history"):
                conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
            _artifacts.delete_run_artifacts(conn, run_id)
            return found

        return self._write(f"delete run {run_id!r}", delete)

    def complete_upload(self, run_id: str, upload: str, sha256: str, size: int, changed: bool) -> str:
        """Record that ``upload``'s bytes (``sha256``, ``size``) are stored; returns its state
        (``stored`` or ``changed``). Idempotent for the same sha256; UploadConflictError for
        another; RunNotFoundError for a run the store does not hold yet."""
        now = time.time()
        state, _ = self._write(
            f"complete upload {upload}",
            lambda conn: _artifacts.complete_upload(conn, run_id, upload, sha256, size, changed, now),
        )
        return state

    def waiting_spool_files(self) -> list[Path]:
        """Spool files under this data dir that wait to be ingested (or are still being written)."""
        return spool_files(self.spool_dir)

    # -- reads ---------------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = connect_read_only(self.path) if self.read_only else connect(self.path, writer=False)
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def list_runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        return reader.list_runs(self._reader(), experiment)

    def search_runs(
        self, filter: str | None = None, sort: str | None = None, limit: int | None = None, offset: int = 0
    ) -> RunPage:
        """The runs matching ``filter`` in ``sort`` order (default newest first), ``limit`` of them
        from ``offset``, with their params, tags and metric summaries; ``total`` counts every match.

        ``filter`` and ``sort`` are in the run query language (``aquarium.collector.query``);
        either raises QueryError, with the position, when it cannot be parsed.
        """
        expr = parse_filter(filter) if filter is not None and filter.strip() else None
        sorts = parse_sort(sort) if sort is not None and sort.strip() else ()
        return search(self._reader(), expr, sorts, limit, offset, time.time())

    def get_run(self, run_id: str) -> dict[str, Any]:
        return reader.get_run(self._reader(), run_id)

    def metric_keys(self, run_id: str) -> list[str]:
        return reader.metric_keys(self._reader(), run_id)

    def ranks(self, run_id: str, key: str) -> list[int]:
        return reader.series_ranks(self._reader(), run_id, key)

    def read_series(self, run_id: str, key: str, rank: int = 0, max_points: int | None = None) -> Series:
        series = reader.read_series(self._reader(), run_id, key, rank)
        if max_points is not None and len(series) > max_points:
            keep = reader.downsample(series.steps, series.values, max_points)
            series = Series(series.steps[keep], series.values[keep], series.times[keep])
        return series

    def read_ranks(self, run_id: str, key: str, max_points: int | None = None) -> dict[int, Series]:
        return {r: self.read_series(run_id, key, r, max_points) for r in self.ranks(run_id, key)}

    def read_aggregate(self, run_id: str, key: str, max_points: int | None = None) -> Aggregate:
        agg = reader.read_aggregate(self._reader(), run_id, key)
        if max_points is not None and len(agg) > max_points:
            keep = reader.downsample(agg.steps, agg.mean, max_points)
            agg = Aggregate(agg.steps[keep], agg.mean[keep], agg.min[keep], agg.max[keep], agg.count[keep])
        return agg

    def read_window(
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
        """Steps ``start``..``end`` (inclusive) of one rank's series (default rank 0) or of an
        aggregate across ranks (``agg``: mean, min, max, or all = mean with the min/max band),
        downsampled to at most ``samples`` points; see ``window``. ``times=False``: no log times.

        Raises WindowError for bad arguments, RunNotFoundError, KeyNotFoundError.
        """
        return _window.read_window(
            self._reader(), run_id, key, rank=rank, agg=agg, samples=samples, start=start, end=end, times=times
        )

    def artifacts(self, run_id: str) -> list[dict[str, Any]]:
        """The run's artifacts in the order logged, each with its upload's sha256 and state
        (pending, stored, changed); RunNotFoundError for an unknown run."""
        return _artifacts.list_artifacts(self._reader(), run_id)

    def artifact(self, run_id: str, name: str, rank: int | None = None) -> dict[str, Any]:
        """The latest artifact named ``name`` (of ``rank``, else of any rank), for download.

        Raises RunNotFoundError, ArtifactNotFoundError, and ArtifactPendingError while its bytes
        have not been uploaded."""
        found = _artifacts.find_artifact(self._reader(), run_id, name, rank)
        if found["state"] == _artifacts.PENDING:
            raise ArtifactPendingError(run_id, name, found["rank"])
        return found

    def pending_artifacts(self) -> int:
        """How many artifact records, in every run, still wait for their bytes."""
        return _artifacts.pending_count(self._reader())

    def upload_state(self, run_id: str, upload: str) -> tuple[str, str | None]:
        """(state, sha256) of an upload: ``pending`` and None until it completed; RunNotFoundError."""
        conn = self._reader()
        _artifacts.require_run(conn, run_id)
        return _artifacts.upload_state(conn, run_id, upload), _artifacts.upload_sha256(conn, run_id, upload)

    def watermark(self, run_id: str, rank: int, incarnation: str) -> int:
        row = (
            self._reader()
            .execute(
                "SELECT committed_seq FROM incarnations WHERE run_id = ? AND rank = ? AND incarnation = ?",
                (run_id, rank, incarnation),
            )
            .fetchone()
        )
        return -1 if row is None else int(row[0])

    @property
    def store_id(self) -> str:
        """A uuid made with the store: which store a Redis prefix feeds (collector/registration.py)."""
        return str(self._reader().execute("SELECT value FROM meta WHERE key = 'store_id'").fetchone()[0])

    def chunk_count(self, run_id: str, key: str, rank: int = 0) -> int:
        row = (
            self._reader()
            .execute(
                "SELECT count(*) FROM chunks c JOIN series s ON s.id = c.series_id WHERE s.run_id = ? AND s.key = ? "
                "AND s.rank = ?",
                (run_id, key, rank),
            )
            .fetchone()
        )
        return int(row[0])

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()

    def __enter__(self) -> "Store":
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
