"""`aquarium sync`: replay spooled batches through Redis, or into the local store."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
import redis
from rich import box
from rich.markup import escape
from rich.table import Table

from aquarium.agent.redis_keys import RedisKeys

from .options import console, data_dir_option, redis_options
from .redis_probe import probe


@click.command()
@click.argument("spool_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@redis_options()
@data_dir_option
@click.option("--local", is_flag=True, help="Ingest straight into the store under --data-dir, without Redis.")
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds to wait for a collector to commit what was sent; 0 sends and keeps the files.",
)
def sync(spool_dir: Path | None, redis_url: str, prefix: str, data_dir: Path, local: bool, wait: float) -> None:
    """Replay spooled (offline) batches: SPOOL_DIR, default DATA_DIR/spool.

    With Redis reachable, every batch is added to the stream; once a collector's commit watermark
    covers a file, the file is deleted (sending twice is harmless: the store skips batches it
    has). With --local, or no Redis answering, the files are ingested into the store under
    --data-dir. Files agents are still writing are left alone. Exit code 1 if records were
    rejected (they stay in *.rejected files), or sent files were not committed within --wait.
    """
    spool_dir = spool_dir or data_dir / "spool"
    if not local and (why := probe(redis_url)):
        click.echo(f"no Redis at {redis_url} ({why}): ingesting into the local store instead", err=True)
        local = True
    if local:
        from aquarium.collector import Store

        with Store(data_dir) as store:
            report = store.ingest_spool(spool_dir, include_live=False)
        rows: dict[str, Any] = {
            "files": report.files,
            "batches": report.batches,
            "new": report.stored,
            "duplicates": report.duplicates,
            "points": report.points,
            "rejected": len(report.rejected),
            "torn bytes": report.torn_bytes,
        }
        problems = [f"{escape(path)}: {escape(reason)}" for path, reason in report.rejected]
        failed = bool(report.rejected)
        where = f"into {data_dir}"
    else:
        from aquarium.agent.sync import sync_through_redis

        client = redis.Redis.from_url(redis_url, socket_timeout=10.0)
        try:
            sync = sync_through_redis(spool_dir, client, RedisKeys(prefix), wait)
        finally:
            client.close()
        rows = {
            "files": sync.files,
            "batches sent": sync.sent,
            "committed files deleted": sync.deleted,
            "files kept": sync.kept,
            "rejected": sync.rejected,
            "torn bytes": sync.torn_bytes,
            "skipped (agent still writing)": sync.skipped_live,
        }
        problems = [escape(p) for p in sync.problems]
        failed = sync.failed
        where = f"to {redis_url}"
    out = console()
    out.print(f"synced {escape(str(spool_dir))} {escape(where)}")
    table = Table("", "", show_header=False, box=box.SIMPLE)
    for key, value in rows.items():
        table.add_row(key, str(value))
    out.print(table)
    for problem in problems:
        out.print(f"[red]✗[/red] {problem}")
    if failed:
        raise SystemExit(1)
