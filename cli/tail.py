"""`aquarium tail RUN`: print a run's points as the collectors commit them, from any machine.

Subscribes to the run's live channel on Redis (collector/live.py) and backfills from the store
(--data-dir) or an HTTP API (--api): first what is stored (after --since-step), then each new
commit, every step of every series once. Ctrl-C ends it (exit 0).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from aquarium.agent.errors import RunNotFoundError

from .options import api_url_option, data_dir_option, redis_options

if TYPE_CHECKING:
    from aquarium.collector.live import Points


@click.command("tail")
@click.argument("run_ref", metavar="RUN")
@redis_options(help="Redis the collectors publish live updates on.")
@data_dir_option
@api_url_option
@click.option("--since-step", type=int, default=None, help="Show only steps after this one (default: all of them).")
@click.option(
    "--json", "as_json", is_flag=True, help='One JSON object a point: {"run","key","rank","step","value","time"}.'
)
def tail(
    run_ref: str,
    redis_url: str,
    prefix: str,
    data_dir: Path,
    api_url: str | None,
    since_step: int | None,
    as_json: bool,
) -> None:
    """Follow RUN (an id, an id prefix or a name; an id not stored yet is waited for): print its
    points as they are committed, after what is already stored. Ctrl-C stops."""
    from aquarium.collector import Api
    from aquarium.collector.live import Points, follow

    from .runs import find_run

    if not api_url and not (data_dir / "aquarium.db").exists():
        raise click.ClickException(f"no Aquarium store in {data_dir}: give --data-dir, or --api URL")
    with Api(api_url or str(data_dir)) as api:
        try:
            run_id = find_run(api, run_ref)
        except RunNotFoundError:
            run_id = run_ref
            click.echo(f"no run {run_ref!r} yet: waiting for it", err=True)
        click.echo(f"following {run_id} on {redis_url} (Ctrl-C stops)", err=True)
        try:
            for item in follow(redis_url, run_id, source=api, prefix=prefix, since_step=since_step):
                if isinstance(item, Points):
                    sys.stdout.write("".join(_lines(item, as_json)))
                    sys.stdout.flush()
                elif not as_json and "status" in item.change:
                    click.echo(f"{run_id}: {item.change['status'][-1][0]}", err=True)
        except KeyboardInterrupt:
            pass


def _lines(points: Points, as_json: bool) -> list[str]:
    rows = zip(points.steps.tolist(), points.values.tolist(), points.times.tolist())
    if as_json:
        return [
            json.dumps(
                {
                    "run": points.run,
                    "key": points.key,
                    "rank": points.rank,
                    "step": step,
                    "value": value if math.isfinite(value) else None,
                    "time": time if math.isfinite(time) else None,
                },
                separators=(",", ":"),
            )
            + "\n"
            for step, value, time in rows
        ]
    return [f"{step}\t{points.key}[{points.rank}]\t{value:.6g}\n" for step, value, _ in rows]
