"""`aquarium collector`: one consumer of the collectors' group, in the foreground."""

from __future__ import annotations

from pathlib import Path

import click

from aquarium.collector.consumer import CollectorStats

from . import doctor
from .options import data_dir_option, redis_options, say


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
def collector(redis_url: str, prefix: str, data_dir: Path, burst: bool, consumer: str, claim_idle: float) -> None:
    """Consume the batch stream into the store (one consumer of the collectors' group).

    Runs until Ctrl-C / SIGTERM; several collectors can share one stream. With --burst it
    drains what is there and prints what it did: batches stored, duplicates, dead letters.
    """
    from aquarium.collector import Collector, CollectorSettings
    from aquarium.collector.service import StopSignals, run_collector

    why = doctor.probe(redis_url)
    if why and burst:
        raise click.ClickException(f"cannot reach Redis at {redis_url} ({why})")
    if why:
        click.echo(f"Redis at {redis_url} is not answering ({why}); retrying until it does", err=True)
    settings = CollectorSettings.from_env(
        redis_url=redis_url, data_dir=data_dir, prefix=prefix, consumer=consumer or None, claim_idle=claim_idle
    )
    worker = Collector(settings)
    try:
        if burst:
            stats = worker.run(burst=True)
        else:
            say(f"collector {worker.consumer}: {redis_url} -> {data_dir.resolve()}; Ctrl-C stops")
            with StopSignals() as stop:
                stats = run_collector(worker, stop)
    finally:
        worker.close()
    say(stats_line(stats))


def stats_line(stats: CollectorStats) -> str:
    line = (
        f"stored {stats.stored} batches ({stats.points:,} points) from {stats.entries} stream entries, "
        f"{stats.duplicates} duplicates, {stats.dead_letters} dead letters"
    )
    if stats.spool_batches:
        line += f"; {stats.spool_batches} batches from the spool"
    if stats.claimed:
        line += f"; {stats.claimed} entries reclaimed from other collectors"
    if stats.gaps:
        line += f"; {sum(stats.gaps.values())} batches missing in {len(stats.gaps)} rank incarnations"
    return line
