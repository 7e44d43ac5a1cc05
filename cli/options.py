"""Option bundles every command shares, and the one way commands print."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

from aquarium.agent import env

F = TypeVar("F", bound=Callable[..., Any])


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


def say(message: str) -> None:
    click.echo(message)
