"""`aquarium ui`: the dashboard in the foreground, over a data dir or an HTTP API."""

from __future__ import annotations

from pathlib import Path

import click

from .options import api_url_option, data_dir_option, redis_options, say


def ui_options(f: click.decorators.FC) -> click.decorators.FC:
    f = click.option(
        "--port",
        envvar="AQUARIUM_UI_PORT",
        show_envvar=True,
        type=click.IntRange(0, 65535),
        default=8053,
        show_default=True,
        help="Port of the dashboard (0: any free one).",
    )(f)
    return click.option(
        "--host",
        envvar="AQUARIUM_UI_HOST",
        show_envvar=True,
        default="127.0.0.1",
        show_default=True,
        help="Address the dashboard listens on. Any non-loopback address needs AQUARIUM_API_TOKEN "
        "(browsers log in with it as the password).",
    )(f)


@click.command("ui")
@ui_options
@data_dir_option
@api_url_option
@redis_options(default=None, help="Redis the collectors publish live updates on (without it curves do not grow).")
def ui(port: int, host: str, data_dir: Path, api_url: str | None, redis_url: str | None, prefix: str) -> None:
    """Serve the dashboard (runs, live curves, comparisons) until Ctrl-C.

    It reads the store under --data-dir, or the HTTP API at --api (AQUARIUM_API_TOKEN is sent).
    With --redis-url (AQUARIUM_REDIS_URL) the charts of running runs grow as points are committed.
    """
    try:
        from aquarium.ui.server import UiSettings, dashboard_for, serve_forever
    except ModuleNotFoundError as e:
        raise click.ClickException(f"{e.name} is not installed: pip install 'aquarium-tracker[ui]'") from e

    settings = UiSettings.from_env(host=host, port=port)
    settings.check_bind()
    if not api_url and not (data_dir / "aquarium.db").exists():
        raise click.ClickException(f"no Aquarium store in {data_dir}: give --data-dir, or --api URL")
    serve_forever(dashboard_for(api_url or str(data_dir), redis_url, prefix), settings, say=say)
