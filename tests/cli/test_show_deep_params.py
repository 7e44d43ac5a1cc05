"""`aquarium show` prints params nested as deep as the wire allows, as a table and as JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from batches import make_batch
from click.testing import CliRunner

from aquarium.agent.wire import MAX_VALUE_DEPTH, pack_batch, unpack_batch
from aquarium.cli import cli
from aquarium.collector import Store


def nested(depth: int) -> Any:
    value: Any = 1.0
    for _ in range(depth):
        value = {"k": value}
    return value


def test_show_prints_params_nested_to_the_wire_limit(data_dir: Path) -> None:
    deepest = nested(MAX_VALUE_DEPTH - 1)  # under the params map itself: the deepest the decoder accepts
    batch = unpack_batch(pack_batch(make_batch(0, [0], [0.5], run="deep", params={"arch": deepest})))
    with Store(data_dir) as store:
        store.ingest([batch])
    runner = CliRunner()
    table = runner.invoke(cli, ["show", "deep", "--data-dir", str(data_dir)], env={"COLUMNS": "200"})
    assert table.exit_code == 0, table.output
    assert "arch" in table.output and '{"k": {"k":' in table.output
    shown = runner.invoke(cli, ["show", "deep", "--json", "--data-dir", str(data_dir)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["params"]["arch"] == deepest
