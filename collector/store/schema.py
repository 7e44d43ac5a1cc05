"""The store's schema, created and evolved by sqlite-utils migrations.

Each migration runs inside a transaction together with the record of it having been applied,
so a crash mid-migration leaves the previous schema intact.
"""

from __future__ import annotations

import os
import sqlite3
import uuid
from pathlib import Path

import sqlite_utils
from sqlite_utils.migrations import Migrations

from aquarium.agent.errors import AquariumError

DB_NAME = "aquarium.db"

migrations = Migrations("aquarium")


@migrations()
def m001_initial(db: sqlite_utils.Database) -> None:
    db.executescript("""
    CREATE TABLE experiments (
        id INTEGER PRIMARY KEY,
        name TEXT NOT NULL UNIQUE,
        created_at REAL NOT NULL
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        experiment_id INTEGER REFERENCES experiments(id),
        name TEXT,
        status TEXT NOT NULL DEFAULT 'running',
        status_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        started_at REAL,
        ended_at REAL,
        host TEXT,
        world_size INTEGER,
        meta TEXT NOT NULL DEFAULT '{}'
    );
    CREATE INDEX runs_experiment ON runs(experiment_id);
    CREATE TABLE params (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,  -- JSON
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID;
    CREATE TABLE tags (
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    ) WITHOUT ROWID;
    CREATE TABLE status_history (
        run_id TEXT NOT NULL,
        rank INTEGER NOT NULL,
        status TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX status_history_run ON status_history(run_id, at);
    -- one row per (run, rank, incarnation): the delivery state the agents' watermark comes from
    CREATE TABLE incarnations (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        rank INTEGER NOT NULL,
        incarnation TEXT NOT NULL,
        first_seen REAL NOT NULL,
        committed_seq INTEGER NOT NULL DEFAULT -1,  -- highest seq with every lower seq stored
        max_seq INTEGER NOT NULL DEFAULT -1,
        batches INTEGER NOT NULL DEFAULT 0,
        UNIQUE (run_id, rank, incarnation)
    );
    -- the batch-id ledger: written in the same transaction as the batch's rows
    CREATE TABLE batches (
        incarnation_id INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        received_at REAL NOT NULL,
        points INTEGER NOT NULL,
        PRIMARY KEY (incarnation_id, seq)
    ) WITHOUT ROWID;
    CREATE TABLE series (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        key TEXT NOT NULL,
        rank INTEGER NOT NULL,
        count INTEGER NOT NULL DEFAULT 0,
        first_step INTEGER,
        last_step INTEGER,
        last_value REAL,
        last_time REAL,
        min_value REAL,
        min_step INTEGER,
        max_value REAL,
        max_step INTEGER,
        chunks INTEGER NOT NULL DEFAULT 0,
        small_chunks INTEGER NOT NULL DEFAULT 0,
        ordered INTEGER NOT NULL DEFAULT 1,  -- 1 while the chunks in precedence order have rising steps
        tail_incarnation TEXT NOT NULL DEFAULT '',
        tail_seq INTEGER NOT NULL DEFAULT -1,
        UNIQUE (run_id, key, rank)
    );
    CREATE TABLE chunks (
        id INTEGER PRIMARY KEY,
        series_id INTEGER NOT NULL,
        incarnation_id INTEGER NOT NULL,
        seq_first INTEGER NOT NULL,
        seq_last INTEGER NOT NULL,
        n INTEGER NOT NULL,
        first_step INTEGER NOT NULL,
        last_step INTEGER NOT NULL,
        encoding INTEGER NOT NULL,
        steps BLOB NOT NULL,
        vals BLOB NOT NULL,
        times BLOB NOT NULL
    );
    CREATE INDEX chunks_series ON chunks(series_id, incarnation_id, seq_last);
    """)


@migrations()
def m002_digests_seen_order_exact_summaries(db: sqlite_utils.Database) -> None:
    """Ledger digests and conflicts; incarnations numbered in the order first seen (the order
    of their rows: existing ones keep it); summaries rebuilt under that order."""
    for statement in (
        "ALTER TABLE batches ADD COLUMN digest BLOB",  # NULL for batches stored before digests
        "ALTER TABLE batches ADD COLUMN conflicted INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE incarnations ADD COLUMN seen_order INTEGER",
        "UPDATE incarnations SET seen_order = id",
        "CREATE UNIQUE INDEX incarnations_seen_order ON incarnations(seen_order)",
        "ALTER TABLE incarnations ADD COLUMN conflicts INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE series DROP COLUMN tail_incarnation",
        "ALTER TABLE series ADD COLUMN tail_order INTEGER NOT NULL DEFAULT -1",
    ):
        db.execute(statement)
    from . import summary  # the summary code needs this schema; it is not needed to define it

    conn = db.conn
    for (series_id,) in conn.execute("SELECT id FROM series").fetchall():
        s = summary.load_by_id(conn, series_id)
        summary.rebuild(conn, s)
        summary.save(conn, s)


@migrations()
def m003_param_and_tag_precedence(db: sqlite_utils.Database) -> None:
    """Which batch (incarnation seen order, seq) set each param and tag: existing values count
    as set before any new batch."""
    for table in ("params", "tags"):
        db.execute(f"ALTER TABLE {table} ADD COLUMN set_order INTEGER NOT NULL DEFAULT 0")
        db.execute(f"ALTER TABLE {table} ADD COLUMN set_seq INTEGER NOT NULL DEFAULT -1")


class ReadOnlyStoreError(AquariumError):
    """Raised when a store on a read-only data dir (a colleague's results, a read-only mount) is
    asked to change, or cannot be read as it is."""

    def __init__(self, path: Path, action: str) -> None:
        self.path, self.action = path, action
        super().__init__(f"the store at {path} is read-only: cannot {action}")


@migrations()
def m004_store_id(db: sqlite_utils.Database) -> None:
    """A store knows which it is, so that one Redis prefix never feeds two stores."""
    db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
    db.execute("INSERT INTO meta (key, value) VALUES ('store_id', ?)", [uuid.uuid4().hex])


@migrations()
def m005_search_index(db: sqlite_utils.Database) -> None:
    """Run search (``search.py``) aggregates each metric's rank rows per run: this index holds
    every column it reads, so filters and sorts on metrics never visit the wide series rows."""
    db.execute(
        "CREATE INDEX series_search ON series(run_id, key, last_step, rank, last_value, min_value, max_value, count)"
    )


@migrations()
def m006_artifacts(db: sqlite_utils.Database) -> None:
    """Artifacts: the records (from batches, through the ledger) and the uploads' completions
    (from HTTP) in two tables keyed by (run, upload), because either may arrive first; readers
    join them (``artifacts.py``). Blobs live on disk under DATA/blobs, named by their sha256."""
    db.executescript("""
    CREATE TABLE artifacts (
        id INTEGER PRIMARY KEY,
        run_id TEXT NOT NULL,
        rank INTEGER NOT NULL,
        incarnation TEXT NOT NULL,
        seq INTEGER NOT NULL,
        upload TEXT NOT NULL,
        name TEXT NOT NULL,
        kind TEXT NOT NULL,
        size INTEGER NOT NULL,  -- at the call; an upload of another size is 'changed'
        step INTEGER,
        framework TEXT,
        media_type TEXT NOT NULL,
        meta TEXT NOT NULL DEFAULT '{}',  -- JSON
        logged_at REAL NOT NULL,
        UNIQUE (run_id, upload)
    );
    CREATE INDEX artifacts_name ON artifacts(run_id, name, logged_at);
    CREATE TABLE artifact_uploads (
        run_id TEXT NOT NULL,
        upload TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        changed INTEGER NOT NULL,  -- the file changed between the call and its upload
        completed_at REAL NOT NULL,
        PRIMARY KEY (run_id, upload)
    ) WITHOUT ROWID;
    """)


@migrations()
def m007_chunk_previews(db: sqlite_utils.Database) -> None:
    """Each large chunk's extremes (``preview``), so that long series are downsampled from a 32nd
    of their points. A table of their own, not a column of ``chunks``: SQLite reaches a column
    stored after a chunk's large blobs only by walking their overflow pages. Chunks written
    before this version have none and are read raw, as are small ones."""
    db.executescript("""
    CREATE TABLE chunk_previews (chunk_id INTEGER PRIMARY KEY, rows BLOB NOT NULL);
    CREATE TRIGGER chunk_previews_follow_chunks AFTER DELETE ON chunks
    BEGIN DELETE FROM chunk_previews WHERE chunk_id = OLD.id; END;
    """)


class NotAStoreError(AquariumError):
    """Raised when the data dir's database file is not an SQLite database (another program's file,
    or one damaged beyond opening)."""

    def __init__(self, path: Path, error: BaseException) -> None:
        self.path = path
        super().__init__(f"{path} is not an Aquarium store ({error}); move it away or choose another --data-dir")


def connect(path: Path, *, writer: bool) -> sqlite3.Connection:
    """A connection with the store's pragmas; the writer's commits are durable (FULL), because
    the collector acknowledges batches to Redis only after commit."""
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30.0)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
    except sqlite3.DatabaseError as e:
        conn.close()
        if type(e) is sqlite3.DatabaseError:  # "file is not a database"
            raise NotAStoreError(path, e) from e
        raise
    conn.execute("PRAGMA busy_timeout=30000")
    conn.execute("PRAGMA synchronous=FULL" if writer else "PRAGMA query_only=1")
    conn.execute("PRAGMA cache_size=-65536")
    return conn


def connect_read_only(path: Path) -> sqlite3.Connection:
    """A reader on a database this process may not write.

    ``mode=ro`` sees a live writer's commits but needs the WAL's ``-shm`` index, which it cannot
    create in a read-only directory; when that fails the file is opened ``immutable`` (nobody is
    writing a store whose directory no one can write).
    """
    uri = path.resolve().as_uri()
    for flags in ("mode=ro", "immutable=1"):
        conn = sqlite3.connect(f"{uri}?{flags}", uri=True, check_same_thread=False, isolation_level=None)
        try:
            conn.execute("PRAGMA busy_timeout=30000")
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError:
            conn.close()
            continue
        except sqlite3.DatabaseError as e:
            conn.close()
            raise NotAStoreError(path, e) from e
        return conn
    raise ReadOnlyStoreError(path, "open it (not an SQLite database, or unreadable)")


def check_current(conn: sqlite3.Connection, path: Path) -> None:
    """Reads assume the current schema; a read-only store cannot be migrated to it."""
    if migrations.pending(sqlite_utils.Database(conn)):
        raise ReadOnlyStoreError(path, "migrate it to this version's schema (open it once where it is writable)")


def is_writable(data_dir: Path) -> bool:
    """Whether this process may create and write the store under ``data_dir`` (``os.access`` is
    also False on a read-only mount, even for root)."""
    db = data_dir / DB_NAME
    if data_dir.exists():
        return os.access(data_dir, os.W_OK) and (not db.exists() or os.access(db, os.W_OK))
    existing = next(p for p in data_dir.absolute().parents if p.exists())
    return os.access(existing, os.W_OK)


def migrate(conn: sqlite3.Connection) -> None:
    migrations.apply(sqlite_utils.Database(conn))
