"""The `aquarium` command line, in process with click's CliRunner (`aquarium up`: see test_up.py)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner, Result

import aquarium.agent as aq
from aquarium.agent.redis_keys import BATCH_FIELD, RedisKeys
from aquarium.agent.spool import SpoolHeader, SpoolWriter, spool_files
from aquarium.cli import cli
from aquarium.cli.redis_server import free_port
from aquarium.collector import Store

README = Path(__file__).parents[2] / "README.md"


def invoke(*args: str, ok: bool = True) -> Result:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "1000"}, catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def nowhere() -> str:
    """A Redis URL with nothing listening."""
    return f"redis://127.0.0.1:{free_port()}/0"


def log_offline(
    data_dir: Path,
    run_id: str,
    *,
    ranks: int = 1,
    steps: int = 10,
    name: str | None = None,
    experiment: str = "exp",
    spool_dir: Path | None = None,
    **extra: Any,
) -> None:
    """loss = step * 10 + rank at steps 0..steps-1 on every rank, logged offline into the spool."""
    for rank in range(ranks):
        run = aq.init(
            experiment=experiment,
            name=name or run_id,
            config={"lr": 0.01, "optimizer": "adam"},
            run_id=run_id,
            rank=rank,
            world_size=ranks,
            mode="offline",
            data_dir=data_dir,
            spool_dir=spool_dir or data_dir / "spool",
            **extra,
        )
        for step in range(steps):
            run.log({"loss": float(step * 10 + rank)}, step=step)
        run.finish()


def test_commands_have_help_and_are_in_the_readme() -> None:
    assert cli.commands
    readme = README.read_text()  # a missing README fails: it documents these commands
    for name, command in cli.commands.items():
        result = invoke(name, "--help")
        assert command.help and command.help.strip()
        assert f"Usage: cli {name}" in result.output or f"Usage: aquarium {name}" in result.output
        assert len(result.output.strip().splitlines()) > 3
        assert f"aquarium {name}" in readme, f"`aquarium {name}` is not documented in README.md"


def test_version() -> None:
    assert "0.1.0" in invoke("--version").output


def test_ls_and_show_json_after_offline_runs(data_dir: Path) -> None:
    log_offline(data_dir, "job-1", ranks=2, name="two ranks", experiment="ddp")
    log_offline(data_dir, "solo", experiment="other")
    assert spool_files(data_dir / "spool")  # nothing stored yet: opening the store ingests them

    runs = json.loads(invoke("ls", "--json", "--data-dir", str(data_dir)).stdout)
    by_id = {r["id"]: r for r in runs}
    assert set(by_id) == {"job-1", "solo"} and not spool_files(data_dir / "spool")
    assert by_id["job-1"]["name"] == "two ranks" and by_id["job-1"]["experiment"] == "ddp"
    assert by_id["job-1"]["status"] == "completed" and by_id["job-1"]["ranks"] == 2
    assert by_id["solo"]["ranks"] == 1 and by_id["solo"]["created_at"] > 0
    only = json.loads(invoke("ls", "--json", "--experiment", "other", "--data-dir", str(data_dir)).stdout)
    assert [r["id"] for r in only] == ["solo"]

    run = json.loads(invoke("show", "job-1", "--json", "--data-dir", str(data_dir)).stdout)
    assert (run["id"], run["name"], run["experiment"], run["status"]) == ("job-1", "two ranks", "ddp", "completed")
    assert run["params"] == {"lr": 0.01, "optimizer": "adam"} and run["ranks"] == [0, 1]
    loss = run["metrics"]["loss"]
    assert (loss["count"], loss["last"], loss["min"], loss["max"]) == (20, 90.0, 0.0, 91.0)
    assert loss["last_step"] == 9 and loss["max_step"] == 9

    table = invoke("ls", "--data-dir", str(data_dir)).output
    assert "job-1" in table and "two ranks" in table and "solo" in table
    shown = invoke("show", "job-1", "--data-dir", str(data_dir)).output
    assert "optimizer" in shown and "loss" in shown and "20" in shown and "91" in shown


def test_show_json_writes_non_finite_values_as_strict_json(data_dir: Path) -> None:
    run = aq.init(experiment="e", run_id="inf-run", mode="offline", data_dir=data_dir)
    run.log({"x": 1.0}, step=0)
    run.log({"x": float("inf")}, step=1)
    run.log({"x": float("-inf")}, step=2)
    run.finish()
    out = invoke("show", "inf-run", "--json", "--data-dir", str(data_dir)).stdout
    x = json.loads(out, parse_constant=lambda c: pytest.fail(f"bare {c} in JSON"))["metrics"]["x"]
    assert (x["count"], x["last"], x["min"], x["max"]) == (3, "-Infinity", "-Infinity", "Infinity")


def test_show_unknown_run_is_a_clear_error(data_dir: Path) -> None:
    log_offline(data_dir, "known")
    result = invoke("show", "nope", "--data-dir", str(data_dir), ok=False)
    assert result.exit_code == 1
    assert "no run with id 'nope'" in result.stderr and "Traceback" not in result.output
    assert result.stdout == ""


def test_ls_of_a_missing_data_dir_creates_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nothing-here"
    assert json.loads(invoke("ls", "--json", "--data-dir", str(missing)).stdout) == []
    assert "does not exist" in invoke("ls", "--data-dir", str(missing)).output
    assert not missing.exists()


def test_markup_in_names_shows_literally(data_dir: Path) -> None:
    log_offline(data_dir, "markup", name="[red]x[/red]", experiment="[bold]exp")
    listing = invoke("ls", "--data-dir", str(data_dir)).output
    assert "[red]x[/red]" in listing and "[bold]exp" in listing
    shown = invoke("show", "markup", "--data-dir", str(data_dir)).output
    assert "[red]x[/red]" in shown and "[bold]exp" in shown


def test_demo_offline_then_ls(data_dir: Path) -> None:
    out = invoke(
        "demo",
        "--runs",
        "2",
        "--ranks",
        "3",
        "--steps",
        "200",
        "--seed",
        "1",
        "--redis-url",
        nowhere(),
        "--data-dir",
        str(data_dir),
    ).output
    assert "offline" in out and "stored by the local store" in out and "logged 2 runs x 3 ranks" in out
    runs = json.loads(invoke("ls", "--json", "--experiment", "demo", "--data-dir", str(data_dir)).stdout)
    assert len(runs) == 2 and all(r["ranks"] == 3 and r["status"] == "completed" for r in runs)
    run = json.loads(invoke("show", runs[0]["id"], "--json", "--data-dir", str(data_dir)).stdout)
    assert run["ranks"] == [0, 1, 2] and {"lr", "batch_size", "optimizer"} <= set(run["params"])
    assert run["metrics"]["loss"]["count"] == 600 and run["metrics"]["val_loss"]["count"] == 60
    assert run["metrics"]["loss"]["last"] < run["metrics"]["loss"]["max"]  # the loss decays
    assert not spool_files(data_dir / "spool")


def test_demo_through_redis_stores_the_runs_when_no_collector_runs(redis_url: str, data_dir: Path) -> None:
    out = invoke(
        "demo", "--runs", "2", "--ranks", "2", "--steps", "100", "--redis-url", redis_url, "--data-dir", str(data_dir)
    ).output
    assert "through Redis" in out and "stored by a burst collector the demo started" in out
    runs = json.loads(invoke("ls", "--json", "--data-dir", str(data_dir)).stdout)
    assert len(runs) == 2 and all(r["ranks"] == 2 and r["experiment"] == "demo" for r in runs)
    keys = RedisKeys()
    client = redis.Redis.from_url(redis_url)
    try:
        assert client.xpending(keys.stream, keys.group)["pending"] == 0
    finally:
        client.close()


def test_sync_local_ingests_an_offline_run(tmp_path: Path, data_dir: Path) -> None:
    spool = tmp_path / "laptop-spool"
    log_offline(tmp_path / "agent", "offline-run", ranks=2, spool_dir=spool)
    assert len(spool_files(spool)) == 2
    out = invoke("sync", str(spool), "--local", "--data-dir", str(data_dir)).output
    assert "files" in out and "new" in out and "duplicates" in out
    assert not spool_files(spool)
    with Store(data_dir) as store:
        assert store.get_run("offline-run")["metrics"]["loss"]["count"] == 20
    assert "0" in invoke("sync", str(spool), "--local", "--data-dir", str(data_dir)).output


def test_sync_without_redis_falls_back_to_the_local_store(data_dir: Path) -> None:
    log_offline(data_dir, "fallback")
    result = invoke("sync", "--redis-url", nowhere(), "--data-dir", str(data_dir))
    assert "ingesting into the local store" in result.stderr
    with Store(data_dir) as store:
        assert store.get_run("fallback")["metrics"]["loss"]["count"] == 10


def test_sync_exits_1_when_records_are_rejected(tmp_path: Path, data_dir: Path) -> None:
    spool = tmp_path / "spool"
    writer = SpoolWriter(spool / "bad" / "0-inc-00000.spool", SpoolHeader("bad", 0, "inc", 0.0))
    writer.append(b"\xc1 not a batch")
    writer.close()
    result = invoke("sync", str(spool), "--local", "--data-dir", str(data_dir), ok=False)
    assert result.exit_code == 1 and "not msgpack" in result.output
    assert list(spool.rglob("*.rejected"))


def test_sync_through_redis_then_a_burst_collector(redis_url: str, tmp_path: Path, data_dir: Path) -> None:
    spool = tmp_path / "laptop-spool"
    log_offline(tmp_path / "agent", "synced", ranks=2, spool_dir=spool)
    sent = invoke("sync", str(spool), "--wait", "0", "--redis-url", redis_url, "--data-dir", str(data_dir)).output
    assert "batches sent" in sent and len(spool_files(spool)) == 2  # not committed yet: kept

    client = redis.Redis.from_url(redis_url)
    try:
        client.xadd(RedisKeys().stream, {BATCH_FIELD: b"garbage"})
        stats = invoke("collector", "--burst", "--redis-url", redis_url, "--data-dir", str(data_dir)).output
        assert "stored 2 batches (20 points) from 3 stream entries" in stats and ", 1 dead letter" in stats
        assert client.xlen(RedisKeys().dead_letter) == 1
    finally:
        client.close()
    with Store(data_dir) as store:
        run = store.get_run("synced")
        assert run["ranks"] == [0, 1] and run["metrics"]["loss"]["count"] == 20

    # the watermark now covers both files: sending again is harmless, and they are deleted
    again = invoke("sync", str(spool), "--wait", "5", "--redis-url", redis_url, "--data-dir", str(data_dir)).output
    assert "committed files deleted" in again and not spool_files(spool)


def test_sync_through_redis_keeps_files_no_collector_commits(redis_url: str, tmp_path: Path, data_dir: Path) -> None:
    spool = tmp_path / "spool"
    log_offline(tmp_path / "agent", "waiting", spool_dir=spool)
    result = invoke(
        "sync", str(spool), "--wait", "0.3", "--redis-url", redis_url, "--data-dir", str(data_dir), ok=False
    )
    assert result.exit_code == 1 and "not committed" in result.output and len(spool_files(spool)) == 1


def test_collector_burst_without_redis_fails_fast(data_dir: Path) -> None:
    result = invoke("collector", "--burst", "--redis-url", nowhere(), "--data-dir", str(data_dir), ok=False)
    assert result.exit_code == 1 and "cannot reach Redis" in result.stderr


def test_doctor_passes_against_a_healthy_setup(redis_url: str, data_dir: Path) -> None:
    out = invoke("doctor", "--redis-url", redis_url, "--data-dir", str(data_dir)).output
    for check in ("redis version", "maxmemory-policy", "noeviction", "data dir", "store", "spool", "stream"):
        assert check in out
    assert "✓" in out and "✗" not in out


def test_doctor_fails_when_nothing_listens(data_dir: Path) -> None:
    result = invoke("doctor", "--redis-url", nowhere(), "--data-dir", str(data_dir), ok=False)
    assert result.exit_code == 1 and "✗" in result.output and "cannot reach" in result.output


def test_doctor_flags_an_evicting_redis_and_waiting_spool(redis_url: str, data_dir: Path) -> None:
    log_offline(data_dir, "waiting")
    client = redis.Redis.from_url(redis_url)
    try:
        client.config_set("maxmemory-policy", "allkeys-lru")
        result = invoke("doctor", "--redis-url", redis_url, "--data-dir", str(data_dir), ok=False)
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()
    assert result.exit_code == 1 and "allkeys-lru" in result.output and "1 waiting" in result.output


def test_settings_come_from_the_environment(redis_url: str, data_dir: Path) -> None:
    log_offline(data_dir, "from-env")
    env = {"AQUARIUM_DATA_DIR": str(data_dir), "COLUMNS": "1000"}
    result = CliRunner().invoke(cli, ["ls", "--json"], env=env)
    assert result.exit_code == 0 and [r["id"] for r in json.loads(result.stdout)] == ["from-env"]
    result = CliRunner().invoke(cli, ["doctor"], env={**env, "AQUARIUM_REDIS_URL": redis_url})
    assert result.exit_code == 0 and redis_url in result.output


def test_verbose_logging_handlers_are_removed_afterwards(data_dir: Path) -> None:
    logger = logging.getLogger("aquarium")
    before = list(logger.handlers)
    invoke("-vv", "ls", "--data-dir", str(data_dir))
    assert logger.handlers == before


def test_a_missing_server_extra_prints_the_pip_line() -> None:
    code = (
        "import sys; sys.modules['rich'] = None; sys.argv = ['aquarium', 'ls']; from aquarium.cli import main; main()"
    )
    result = subprocess.run([sys.executable, "-P", "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "pip install 'aquarium-tracker[server]'" in result.stderr
    assert "Traceback" not in result.stderr
