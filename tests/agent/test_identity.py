"""All ranks of one job join one run: ids from arguments, AQUARIUM_*, torchrun or SLURM."""

from __future__ import annotations

import pytest

from aquarium.agent.errors import ConfigError, InvalidNameError
from aquarium.agent.identity import resolve
from aquarium.agent.settings import AgentSettings


def test_explicit_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQUARIUM_RUN_ID", "from-env")
    monkeypatch.setenv("RANK", "3")
    ident = resolve(run_id="explicit", rank=1, world_size=4)
    assert (ident.run_id, ident.rank, ident.world_size) == ("explicit", 1, 4)


def test_aquarium_variables_then_launcher_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "abc123")
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("WORLD_SIZE", "4")
    ident = resolve()
    assert (ident.run_id, ident.rank, ident.world_size) == ("torchrun-abc123", 2, 4)
    monkeypatch.setenv("AQUARIUM_RUN_ID", "mine")
    monkeypatch.setenv("AQUARIUM_RANK", "1")
    assert (resolve().run_id, resolve().rank) == ("mine", 1)


def test_slurm(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLURM_JOB_ID", "98765")
    monkeypatch.setenv("SLURM_PROCID", "5")
    monkeypatch.setenv("SLURM_NTASKS", "8")
    ident = resolve()
    assert (ident.run_id, ident.rank, ident.world_size) == ("slurm-98765", 5, 8)


def test_torchrun_default_rdzv_id_is_not_a_run_id(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    assert not resolve().run_id.startswith("torchrun")


def test_incarnations_differ_per_process_start_and_sort_by_time() -> None:
    first, second = resolve(run_id="r"), resolve(run_id="r")
    assert first.run_id == second.run_id and first.incarnation != second.incarnation
    assert first.incarnation < second.incarnation


@pytest.mark.parametrize("bad", ["has space", "a/b", "x" * 129, "-leading"])
def test_bad_run_ids_raise(bad: str) -> None:
    with pytest.raises(InvalidNameError):
        resolve(run_id=bad)


def test_bad_settings_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AQUARIUM_FLUSH_INTERVAL", "soon")
    with pytest.raises(ConfigError, match="AQUARIUM_FLUSH_INTERVAL='soon'"):
        AgentSettings.from_env()
    monkeypatch.setenv("AQUARIUM_FLUSH_INTERVAL", "0.05")
    monkeypatch.setenv("AQUARIUM_MODE", "sometimes")
    with pytest.raises(ConfigError, match="AQUARIUM_MODE"):
        AgentSettings.from_env()
    with pytest.raises(ConfigError, match="unknown setting"):
        AgentSettings.from_env(redis_uri="x")
    assert AgentSettings.from_env(mode="offline", flush_interval=0.5).flush_interval == 0.5
