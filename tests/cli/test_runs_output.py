"""What `ls` and `show` print: start times, whole ids and names, NaN, counts, runs found by prefix or name."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

import aquarium.agent as aq
import aquarium.agent.run as agent_run
from aquarium.cli import cli

LONG_ID = "sweep-2026-12-01-resnet50-imagenet-0042"
LONG_NAME = "adamw-lr3e-4-warmup2000-cosine-bs1024-labelsmoothing0.1"


def invoke(*args: str, columns: int = 200) -> Result:
    return CliRunner().invoke(cli, list(args), env={"COLUMNS": str(columns)}, catch_exceptions=False)


def log_run(data_dir: Path, run_id: str, name: str, values: list[float] | None = None, **extra: object) -> None:
    run = aq.init(
        experiment="an-experiment-with-a-long-name",
        name=name,
        run_id=run_id,
        mode="offline",
        data_dir=data_dir,
        **extra,
    )  # type: ignore[arg-type]
    for step, value in enumerate(values if values is not None else [1.0, 0.5]):
        run.log({"loss": value}, step=step)
    run.finish()


def test_ls_shows_when_the_run_started_not_when_the_store_saw_it(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started = datetime(2021, 3, 4, 5, 6).timestamp()
    monkeypatch.setattr(agent_run, "_now", lambda: started)
    log_run(data_dir, "old-run", "old")
    out = invoke("ls", "--data-dir", str(data_dir)).output
    assert "started" in out and "2021-03-04 05:06" in out
    shown = invoke("show", "old-run", "--data-dir", str(data_dir)).output
    assert "2021-03-04 05:06" in shown


@pytest.mark.parametrize("columns", [80, 60])
def test_ls_keeps_ids_and_names_whole_in_a_narrow_terminal(data_dir: Path, columns: int) -> None:
    log_run(data_dir, LONG_ID, LONG_NAME)
    log_run(data_dir, "short", "s")
    out = invoke("ls", "--data-dir", str(data_dir), columns=columns).output
    assert LONG_ID in out and LONG_NAME in out, out
    assert "completed" in out and "2 runs" in out


def test_ls_piped_keeps_ids_and_names_whole(data_dir: Path) -> None:
    log_run(data_dir, LONG_ID, LONG_NAME)
    code = "from aquarium.cli import main; main()"
    env = {"AQUARIUM_DATA_DIR": str(data_dir), "PATH": "/usr/bin:/bin"}
    piped = subprocess.run(
        [sys.executable, "-P", "-c", code, "ls"], capture_output=True, text=True, env=env, timeout=60
    )
    assert piped.returncode == 0, piped.stderr
    assert LONG_ID in piped.stdout and LONG_NAME in piped.stdout and "1 run in" in piped.stdout


def test_show_keeps_metric_names_whole_at_80_columns(data_dir: Path) -> None:
    key = "validation/imagenet-top1-accuracy-after-label-smoothing"
    run = aq.init(experiment="e", name=LONG_NAME, run_id=LONG_ID, mode="offline", data_dir=data_dir)
    run.log({key: 0.7}, step=0)
    run.finish()
    out = invoke("show", LONG_ID, "--data-dir", str(data_dir), columns=80).output
    assert key in out and LONG_ID in out


def test_a_nan_logged_last_shows_as_nan(data_dir: Path) -> None:
    log_run(data_dir, "diverged", "d", values=[1.0, 0.5, math.nan])
    out = invoke("show", "diverged", "--data-dir", str(data_dir)).output
    assert "nan (2)" in out, out
    x = json.loads(invoke("show", "diverged", "--json", "--data-dir", str(data_dir)).stdout)["metrics"]["loss"]
    assert (x["last"], x["last_step"], x["min"], x["max"]) == ("NaN", 2, 0.5, 1.0)


def test_an_all_nan_metric_has_no_min_or_max(data_dir: Path) -> None:
    log_run(data_dir, "all-nan", "a", values=[math.nan])
    x = json.loads(invoke("show", "all-nan", "--json", "--data-dir", str(data_dir)).stdout)["metrics"]["loss"]
    assert (x["last"], x["min"], x["max"]) == ("NaN", None, None)


def test_show_finds_a_run_by_unique_prefix_or_name(data_dir: Path) -> None:
    log_run(data_dir, "abc123", "baseline")
    log_run(data_dir, "abd456", "tuned")
    assert json.loads(invoke("show", "abc", "--json", "--data-dir", str(data_dir)).stdout)["id"] == "abc123"
    assert json.loads(invoke("show", "tuned", "--json", "--data-dir", str(data_dir)).stdout)["id"] == "abd456"


def test_show_lists_the_runs_an_ambiguous_reference_matches(data_dir: Path) -> None:
    log_run(data_dir, "abc123", "baseline")
    log_run(data_dir, "abd456", "tuned")
    log_run(data_dir, "zzz", "baseline")
    for ref, expected in (("ab", {"abc123", "abd456"}), ("baseline", {"abc123", "zzz"})):
        result = invoke("show", ref, "--data-dir", str(data_dir))
        assert result.exit_code == 1 and result.stdout == ""
        assert "matches 2 runs" in result.stderr and all(run_id in result.stderr for run_id in expected)
        assert "Traceback" not in result.stderr


def test_counts_are_pluralised(data_dir: Path) -> None:
    log_run(data_dir, "only", "one")
    assert "1 run in" in invoke("ls", "--data-dir", str(data_dir)).output
    assert "1 runs" not in invoke("ls", "--data-dir", str(data_dir)).output
