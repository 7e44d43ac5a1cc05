"""`aquarium ls --filter/--sort/--limit/--offset`: the query language on the command line."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import aquarium.agent as aq
from aquarium.cli import cli


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"}, catch_exceptions=False)


@pytest.fixture
def runs(data_dir: Path) -> Path:
    """Three offline runs: lr 0.1, 0.01, 0.001; val_loss min 0.3, 0.2, 0.1; a and c are tagged prod."""
    for run_id, lr, low, tags in (("a", 0.1, 0.3, ["prod"]), ("b", 0.01, 0.2, []), ("c", 0.001, 0.1, ["prod"])):
        run = aq.init(
            experiment="sweep" if run_id != "b" else "other",
            name=f"run-{run_id}",
            config={"lr": lr, "optimizer": "adam"},
            run_id=run_id,
            mode="offline",
            data_dir=data_dir,
            tags=tags,
        )  # type: ignore[arg-type]
        for step, value in enumerate([low + 1, low]):
            run.log({"val_loss": value}, step=step)
        run.finish()
    return data_dir


def ls_ids(data_dir: Path, *args: str) -> list[str]:
    result = invoke("ls", "--json", "--data-dir", str(data_dir), *args)
    assert result.exit_code == 0, result.output
    return [r["id"] for r in json.loads(result.stdout)]


def test_filter_sort_limit_offset(runs: Path) -> None:
    assert ls_ids(runs, "--filter", "params.lr > 5e-3") == ["b", "a"]
    assert ls_ids(runs, "--filter", '"prod" in tags', "--sort", "-metrics.val_loss.min") == ["a", "c"]
    assert ls_ids(runs, "--sort", "params.lr") == ["c", "b", "a"]
    assert ls_ids(runs, "--sort", "params.lr", "--limit", "2") == ["c", "b"]
    assert ls_ids(runs, "--sort", "params.lr", "--limit", "2", "--offset", "2") == ["a"]
    assert ls_ids(runs, "--experiment", "sweep", "--filter", "val_loss.min < 0.2") == ["c"]
    assert ls_ids(runs, "--experiment", "sweep") == ["c", "a"]  # the option still works alone


def test_json_runs_carry_params_tags_and_metrics(runs: Path) -> None:
    (run,) = json.loads(invoke("ls", "--json", "--filter", "id == 'c'", "--data-dir", str(runs)).stdout)
    assert run["params"] == {"lr": 0.001, "optimizer": "adam"} and "prod" in run["tags"]
    assert run["metrics"]["val_loss"] == {"last": 0.1, "min": 0.1, "max": 1.1, "count": 2}
    assert run["duration"] is not None and run["duration"] >= 0


def test_the_table_says_how_many_of_how_many(runs: Path) -> None:
    out = invoke("ls", "--data-dir", str(runs), "--sort", "-metrics.val_loss.min", "--limit", "2").output
    assert "showing 2 of 3 runs" in out and "metrics.val_loss.min" in out and "0.3" in out
    out = invoke("ls", "--data-dir", str(runs), "--limit", "1", "--offset", "1").output
    assert "showing 2-2 of 3 runs" in out
    out = invoke("ls", "--data-dir", str(runs), "--filter", '"prod" in tags').output
    assert "2 runs matching the filter" in out and "showing" not in out
    assert "no runs match the filter" in invoke("ls", "--data-dir", str(runs), "--filter", "id == 'x'").output
    assert "3 runs match" in invoke("ls", "--data-dir", str(runs), "--offset", "5").output


@pytest.mark.parametrize(
    ("option", "value", "caret_at"),
    [
        ("--filter", "params.lr > 1e-3 and metrics.val_loss.median < 0.3", 21),
        ("--filter", "(params.lr > 1", 0),
        ("--filter", 'name ~ "["', 7),
        ("--sort", "-metrics.loss", 1),
    ],
)
def test_a_bad_query_is_a_usage_error_with_a_caret(runs: Path, option: str, value: str, caret_at: int) -> None:
    result = CliRunner().invoke(cli, ["ls", "--data-dir", str(runs), option, value])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"Invalid value for '{option}'" in result.output
    lines = result.output.splitlines()
    assert lines[-2] == "  " + value and lines[-1] == "  " + " " * caret_at + "^"


def test_a_bad_filter_is_refused_before_the_store_is_opened(tmp_path: Path) -> None:
    missing = tmp_path / "nothing"
    result = CliRunner().invoke(cli, ["ls", "--data-dir", str(missing), "--filter", "foo > 1"])
    assert result.exit_code == 2 and "unknown field 'foo'" in result.output and not missing.exists()


def test_an_experiment_name_with_quotes_is_a_literal(data_dir: Path) -> None:
    name = 'say "hi" \\ there'
    run = aq.init(experiment=name, run_id="q", mode="offline", data_dir=data_dir)
    run.finish()
    assert ls_ids(data_dir, "--experiment", name) == ["q"]
    assert ls_ids(data_dir, "--experiment", 'say "hi"') == []
