"""`aquarium sync`: replay spooled batches through Redis, or into the local store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import redis
from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from aquarium.agent.redis_keys import RedisKeys

from .options import console, data_dir_option, redis_options
from .redis_probe import probe

if TYPE_CHECKING:
    from aquarium.agent.pending_uploads import PendingUpload


@click.command()
@click.argument("spool_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@redis_options()
@data_dir_option
@click.option("--local", is_flag=True, help="Ingest straight into the store under --data-dir, without Redis.")
@click.option(
    "--api-url",
    envvar="AQUARIUM_API_URL",
    show_envvar=True,
    default=None,
    metavar="URL",
    help="HTTP API pending artifact uploads go to (default: the one a collector published in Redis).",
)
@click.option(
    "--wait",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help=(
        "Seconds to wait for a collector to commit what was sent, and to retry uploads that cannot be done "
        "yet; 0 sends and keeps the files, and tries each upload once."
    ),
)
def sync(
    spool_dir: Path | None,
    redis_url: str,
    prefix: str,
    data_dir: Path,
    local: bool,
    api_url: str | None,
    wait: float,
) -> None:
    """Replay spooled (offline) batches: SPOOL_DIR, default DATA_DIR/spool; then upload the
    artifacts agents could not (SPOOL_DIR/uploads), to --api-url or the API a collector published.

    With Redis reachable, every batch is added to the stream; once a collector's commit watermark
    covers a file, the file is deleted (sending twice is harmless: the store skips batches it
    has). With --local, or no Redis answering, the files are ingested into the store under
    --data-dir. Files agents are still writing are left alone. Exit code 1 if records were
    rejected (they stay in *.rejected files), sent files were not committed within --wait, or
    an artifact could not be uploaded (its record is kept: run sync again).
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
    uploads_failed = _sync_uploads(out, spool_dir, api_url or "", "" if local else redis_url, wait)
    if failed or uploads_failed:
        raise SystemExit(1)


def _sync_uploads(out: Console, spool_dir: Path, api_url: str, redis_url: str, wait: float) -> bool:
    """Complete the pending artifact uploads under ``spool_dir``; True if some failed."""
    from aquarium.agent import pending_uploads
    from aquarium.agent.api_locator import ApiLocator
    from aquarium.agent.upload_sync import complete_uploads

    records, unreadable = pending_uploads.read_all(spool_dir)
    if not records and not unreadable:
        return False
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=out,
        transient=True,
    ) as bars:

        def started(record: PendingUpload) -> Callable[[int], None]:
            task = bars.add_task(escape(f"{record.run}/{record.name}"), total=2 * record.size or 1)
            return lambda n: bars.advance(task, n)

        report = complete_uploads(spool_dir, ApiLocator(url=api_url, redis_url=redis_url), wait, started)
    out.print(
        f"artifacts: {report.uploaded} uploaded ({report.changed} marked changed), {report.failed} failed, "
        f"{report.skipped_live} left to the agent still running"
    )
    for problem in report.problems:
        out.print(f"[red]✗[/red] {escape(problem)}")
    return bool(report.failed)
