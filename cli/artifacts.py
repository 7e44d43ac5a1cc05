"""`aquarium artifacts RUN`: what a run logged as files, models and figures, and fetching them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from .options import api_url_option, console, data_dir_option, plural, print_table, say
from .runs import find_run, open_api, strict_json

STATE_STYLES = {"stored": "green", "changed": "yellow", "pending": "magenta"}


@click.command("artifacts")
@click.argument("run_ref", metavar="RUN")
@data_dir_option
@click.option("--get", "get_name", metavar="NAME", default=None, help="Download the artifact NAME (the latest of it).")
@click.option(
    "-o",
    "--output",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory --get writes into, at the artifact's name (e.g. DIR/checkpoints/model.pt).",
)
@click.option("--rank", type=click.IntRange(min=0), default=None, help="With --get: the artifact of this rank.")
@click.option("--json", "as_json", is_flag=True, help="Print the artifacts as a JSON array instead of a table.")
@api_url_option
def artifacts_command(
    run_ref: str,
    data_dir: Path,
    get_name: str | None,
    output: Path,
    rank: int | None,
    as_json: bool,
    api_url: str | None,
) -> None:
    """List a run's artifacts (name, kind, size, sha256, rank, step, state), or download one.

    RUN is a run id, a unique prefix of one, or a run name. An artifact is `pending` until its
    bytes have been uploaded, then `stored` (or `changed`: the file changed between the call and
    its upload). --get NAME writes the file under --output, checked against its sha256.
    """
    if api_url is None and not data_dir.exists():
        raise click.ClickException(f"no run with id {run_ref!r}: {data_dir} does not exist")
    with open_api(data_dir, api_url) as api:
        run_id = find_run(api, run_ref)
        if get_name is not None:
            path = api.download_artifact(run_id, get_name, output, rank=rank)
            say(f"wrote {path} ({path.stat().st_size:,} bytes)")
            return
        found = api.artifacts(run_id)
    if as_json:
        click.echo(strict_json(found))
        return
    if not found:
        say(f"run {run_id} has no artifacts")
        return
    print_table(console(), artifacts_table(run_id, found))


def artifacts_table(run_id: str, found: list[dict[str, Any]]) -> Table:
    table = Table("name", "kind", "size", "sha256", "rank", "step", "state", title=f"artifacts of {escape(run_id)}")
    table.title_justify = "left"
    table.columns[0].no_wrap = True
    for a in found:
        style = STATE_STYLES.get(a["state"], "")
        table.add_row(
            escape(a["name"]),
            escape(a["kind"] + (f" ({a['framework']})" if a.get("framework") else "")),
            human_size(a["size"]),
            a["sha256"][:12] if a["sha256"] else "-",
            str(a["rank"]),
            "-" if a["step"] is None else str(a["step"]),
            f"[{style}]{a['state']}[/{style}]" if style else escape(a["state"]),
        )
    table.caption = plural(len(found), "artifact")
    return table


def human_size(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{size} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")
