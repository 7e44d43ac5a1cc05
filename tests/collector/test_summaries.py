"""A series' summary equals what the series reads back, whatever order its batches arrived in."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from batches import make_batch
from click.testing import CliRunner

from aquarium.cli import cli
from aquarium.collector import Store


def summary(store: Store) -> tuple[object, ...]:
    s = store.get_run("r1")["metrics"]["loss"]
    return s["count"], s["last"], s["last_step"], s["min"], s["min_step"], s["max"], s["max_step"]


def test_last_is_the_value_the_series_reads_at_its_top_step_when_a_relog_arrives_early(store: Store) -> None:
    store.ingest([make_batch(1, [5], [2.0])])  # seq 1 re-logged step 5 and arrived first
    store.ingest([make_batch(0, [4, 5], [0.5, 1.0])])
    assert store.read_series("r1", "loss").values.tolist() == [0.5, 2.0]
    assert summary(store) == (3, 2.0, 5, 0.5, 4, 2.0, 5)


def test_min_and_max_forget_values_a_relog_replaced(store: Store) -> None:
    store.ingest([make_batch(0, [0, 1], [5.0, 100.0])])
    store.ingest([make_batch(1, [1], [1.0])])  # step 1 re-logged: 100 is no longer in the series
    assert summary(store) == (3, 1.0, 1, 1.0, 1, 5.0, 0)
    store.ingest([make_batch(2, [0, 1], [-3.0, 0.5])])  # a step below the last one is re-logged too
    assert store.read_series("r1", "loss").values.tolist() == [-3.0, 0.5]
    assert summary(store) == (5, 0.5, 1, -3.0, 0, 0.5, 1)


@pytest.mark.parametrize("order", [[0, 1, 2], [2, 1, 0], [1, 2, 0]])
def test_the_summary_does_not_depend_on_arrival_order(store: Store, order: list[int]) -> None:
    batches = [make_batch(0, [0, 1, 2], [3.0, 1.0, 4.0]), make_batch(1, [2, 3], [1.0, 5.0]), make_batch(2, [3], [9.0])]
    for i in order:
        store.ingest([batches[i]])
    assert store.read_series("r1", "loss").values.tolist() == [3.0, 1.0, 1.0, 9.0]
    assert summary(store) == (6, 9.0, 3, 1.0, 1, 9.0, 3)


def test_nan_as_last_value_is_stored_and_returned_as_nan(store: Store, tmp_path: Path) -> None:
    store.ingest([make_batch(0, [0, 1], [1.0, math.nan])])
    s = store.get_run("r1")["metrics"]["loss"]
    assert s["last_step"] == 1 and math.isnan(s["last"]) and (s["min"], s["max"]) == (1.0, 1.0)
    store.close()
    shown = CliRunner().invoke(cli, ["show", "r1", "--json", "--data-dir", str(tmp_path / "data")])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["metrics"]["loss"]["last"] == "NaN"


def test_a_late_batch_at_the_top_step_loses_to_the_later_seq(store: Store) -> None:
    store.ingest([make_batch(1, [3, 4, 5], [0.0, 7.0, 2.5])])
    store.ingest([make_batch(0, [5], [1.0])])  # logged before seq 1, arrived after it
    assert summary(store) == (4, 2.5, 5, 0.0, 3, 7.0, 4)


def test_relogging_the_step_that_held_the_minimum_with_a_higher_value(store: Store) -> None:
    store.ingest([make_batch(0, [0, 1], [2.5, 0.0])])
    store.ingest([make_batch(1, [1], [7.0])])
    assert summary(store) == (3, 7.0, 1, 2.5, 0, 7.0, 1)
