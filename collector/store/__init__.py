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
from collections.abc import Iterable
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import Any

from aquarium.agent.wire import Batch

from . import compact as _compact
from . import reader
from .ingest import IngestResult, ingest
from .reader import Aggregate, Series
from .schema import DB_NAME, connect
from .spool_ingest import SpoolIngestReport, ingest_spool_dir
from .writer import Writer

__all__ = ["Aggregate", "IngestResult", "Series", "SpoolIngestReport", "Store"]


class Store:
    def __init__(self, data_dir: str | Path = "aquarium_data", *, ingest_spool: bool = True) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.path = self.data_dir / DB_NAME
        self.spool_dir = self.data_dir / "spool"
        self._writer = Writer(self.path)
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        if ingest_spool:
            self.ingest_spool()

    # -- writes --------------------------------------------------------------------------------
    def ingest(self, batches: Iterable[Batch]) -> IngestResult:
        """Store batches in one transaction; batches already in the ledger are skipped."""
        items = list(batches)
        return self._writer.execute(lambda conn: ingest(conn, items))

    def compact(self, everything: bool = False) -> int:
        """Merge small settled chunks; returns how many chunk rows were removed."""
        minimum = 2 if everything else _compact.COMPACT_AT_SMALL_CHUNKS
        removed = 0
        for series_id in self._writer.execute(lambda conn: _compact.series_needing_compaction(conn, minimum)):
            removed += self._writer.execute(partial(_compact.compact_series, series_id=series_id))
        return removed

    def ingest_spool(
        self, spool_dir: str | Path | None = None, delete: bool = True, include_live: bool = True
    ) -> SpoolIngestReport:
        """Ingest spool files (default: this data dir's spool) through the ledger.

        Finished files are deleted once committed; files a live agent still writes are read
        (the ledger makes re-reading harmless) and kept, or skipped with ``include_live=False``.
        """
        return ingest_spool_dir(
            Path(spool_dir) if spool_dir else self.spool_dir, self.ingest, delete=delete, include_live=include_live
        )

    def delete_run(self, run_id: str) -> bool:
        """Remove a run and its points. Its ledger stays, so redelivered batches do not revive it."""

        def delete(conn: sqlite3.Connection) -> bool:
            conn.execute("BEGIN IMMEDIATE")
            try:
                found = conn.execute("DELETE FROM runs WHERE id = ?", (run_id,)).rowcount > 0
                conn.execute(
                    "DELETE FROM chunks WHERE series_id IN (SELECT id FROM series WHERE run_id = ?)", (run_id,)
                )
                for table in ("series", "params", "tags", "status_history"):
                    conn.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            return found

        return self._writer.execute(delete)

    # -- reads ---------------------------------------------------------------------------------
    def _reader(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = connect(self.path, writer=False)
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    def list_runs(self, experiment: str | None = None) -> list[dict[str, Any]]:
        return reader.list_runs(self._reader(), experiment)

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
