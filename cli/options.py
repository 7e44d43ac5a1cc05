"""Option bundles every command shares, and the one way commands print."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from aquarium.agent import env

F = TypeVar("F", bound=Callable[..., Any])
UNBOUNDED_WIDTH = 100_000


def data_dir_option(f: F) -> F:
    return click.option(
        "--data-dir",
        envvar="AQUARIUM_DATA_DIR",
        show_envvar=True,
        default=env.DATA_DIR.default,
        show_default=True,
        type=click.Path(file_okay=False, path_type=Path),
        help="Base directory of the store, artifacts and spool.",
    )(f)


def redis_options(
    default: str | None = env.REDIS_URL.default, help: str = "Redis the agents and collectors use."
) -> Callable[[F], F]:
    def decorate(f: F) -> F:
        f = click.option(
            "--prefix",
            envvar="AQUARIUM_PREFIX",
            show_envvar=True,
            default=env.STREAM_PREFIX.default,
            show_default=True,
            help="Prefix of every Redis key.",
        )(f)
        return click.option(
            "--redis-url",
            envvar="AQUARIUM_REDIS_URL",
            show_envvar=True,
            default=default,
            show_default=default is not None,
            help=help,
        )(f)

    return decorate


def console() -> Console:
    return Console(highlight=False)


def print_table(out: Console, table: Table) -> None:
    """Print ``table`` at least as wide as its no-wrap columns need.

    Rich fits a table to the terminal (80 columns when piped) by folding columns and, when that
    is not enough, by cutting or dropping them: ids and names came out broken. Columns marked
    ``no_wrap`` stay whole; the others fold, and a table that cannot fit is printed wider.
    """
    needed = Measurement.get(out, out.options.update(max_width=UNBOUNDED_WIDTH), table).minimum
    if needed > out.width:
        out = Console(highlight=False, width=needed, file=out.file)
    out.print(table)


def say(message: str) -> None:
    click.echo(message)


def plural(count: int, noun: str, many: str | None = None) -> str:
    """``1 run``, ``2 runs``, ``1,024 entries``: every count the command line prints."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"


def http_options(port: int | None) -> Callable[[F], F]:
    """--http-host / --http-port; ``port=None``: no API unless a port is given."""

    def decorate(f: F) -> F:
        f = click.option(
            "--http-port",
            envvar="AQUARIUM_API_PORT",
            show_envvar=True,
            type=click.IntRange(0, 65535),
            default=port,
            show_default=port is not None,
            help="Port of the HTTP API (0: any free one)."
            + ("" if port is not None else " Without it, no API is served."),
        )(f)
        return click.option(
            "--http-host",
            envvar="AQUARIUM_API_HOST",
            show_envvar=True,
            default="127.0.0.1",
            show_default=True,
            help="Address the HTTP API listens on. Any non-loopback address needs AQUARIUM_API_TOKEN.",
        )(f)

    return decorate


def api_url_option(f: F) -> F:
    return click.option(
        "--api",
        "api_url",
        envvar="AQUARIUM_API_URL",
        show_envvar=True,
        default=None,
        metavar="URL",
        help="Read from this HTTP API (e.g. http://host:8054; AQUARIUM_API_TOKEN is sent) instead of --data-dir.",
    )(f)
