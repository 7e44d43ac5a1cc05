"""`aquarium collector`: one consumer of the collectors' group, in the foreground."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click
import redis

from .api import start_beside
from .data_dir import require_writable
from .options import data_dir_option, http_options, plural, redis_options, say
from .redis_probe import probe

if TYPE_CHECKING:
    from aquarium.collector import Collector
    from aquarium.collector.store import Store


@click.command()
@redis_options()
@data_dir_option
@click.option("--burst", is_flag=True, help="Drain the stream and the spool, print what was stored, and exit.")
@click.option(
    "--consumer",
    default="",
    help="Consumer name in the collectors' group (default: host-pid). "
    "Reusing a dead collector's name takes over its pending entries at once.",
)
@click.option(
    "--claim-idle",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    help="Seconds before entries another collector read but never acknowledged are reclaimed.",
)
@http_options(port=None)
def collector(
    redis_url: str,
    prefix: str,
    data_dir: Path,
    burst: bool,
    consumer: str,
    claim_idle: float,
    http_host: str,
    http_port: int | None,
) -> None:
    """Consume the batch stream into the store (one consumer of the collectors' group).

    Runs until Ctrl-C / SIGTERM; several collectors can share one stream. With --burst it
    drains what is there and prints what it did: batches stored, duplicates, dead letters.
    With --http-port it also serves the HTTP API (runs, series, /metrics) over its store.
    """
    from aquarium.collector import Collector, CollectorSettings
    from aquarium.collector.service import StopSignals, run_collector

    require_writable(data_dir)
    try:
        redis.Redis.from_url(redis_url).close()  # parses the URL; connects only when used
    except ValueError as e:
        raise click.ClickException(f"--redis-url {redis_url!r}: {e}") from e
    why = probe(redis_url)
    if why and burst:
        raise click.ClickException(f"cannot reach Redis at {redis_url} ({why})")
    if why:
        click.echo(f"Redis at {redis_url} is not answering ({why}); retrying until it does", err=True)
    settings = CollectorSettings.from_env(
        redis_url=redis_url, data_dir=data_dir, prefix=prefix, consumer=consumer or None, claim_idle=claim_idle
    )
    worker = Collector(settings)
    api = None
    try:
        if burst:
            worker.run(burst=True)
        else:
            if http_port is not None:
                api = start_beside(worker, http_host, http_port)
                say(f"API on {api.url}")
            say(f"collector {worker.consumer}: {redis_url} -> {data_dir.resolve()}; Ctrl-C stops")
            with StopSignals() as stop:
                run_collector(worker, stop)
        say(summary_line(worker))
    finally:
        if api is not None:
            api.stop()
        worker.close()


def summary_line(collector: Collector) -> str:
    """What a collector did, and what its store says is still missing (call before closing it)."""
    stats = collector.stats
    line = (
        f"stored {plural(stats.stored, 'batch', 'batches')} ({plural(stats.points, 'point')}) "
        f"from {plural(stats.entries, 'stream entry', 'stream entries')}, "
        f"{plural(stats.duplicates, 'duplicate')}, {plural(stats.dead_letters, 'dead letter')}"
    )
    if stats.spool_batches:
        line += f"; {plural(stats.spool_batches, 'batch', 'batches')} from the spool"
    if stats.claimed:
        line += f"; {plural(stats.claimed, 'entry', 'entries')} reclaimed from other collectors"
    missing = missing_batches(collector.store, stats.gaps)
    if missing:
        line += (
            f"; {plural(sum(missing.values()), 'batch', 'batches')} missing in "
            f"{plural(len(missing), 'rank incarnation')} (`aquarium show RUN` lists them)"
        )
    return line


def missing_batches(store: Store, seen: dict[tuple[str, int, str], int]) -> dict[tuple[str, int, str], int]:
    """Batches the store is missing now, in the rank incarnations where a gap was ever seen.

    A gap seen while storing (seq 1 stored before seq 0) is often filled a moment later, so the
    collector's running count overstates; the store's per-incarnation counters are the truth.
    """
    missing: dict[tuple[str, int, str], int] = {}
    for run_id in sorted({run for run, _, _ in seen}):
        for inc in store.get_run(run_id)["incarnations"]:
            key = (run_id, int(inc["rank"]), str(inc["incarnation"]))
            if key in seen and inc["missing"]:
                missing[key] = int(inc["missing"])
    return missing
