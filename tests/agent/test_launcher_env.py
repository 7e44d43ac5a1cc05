"""Launcher variables (torchrun, SLURM) are declared in env.py; a bad value raises, naming it.

``RANK=abc`` used to become rank 0 silently, so two ranks could write one series.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import aquarium.agent as aq
from aquarium.agent import env
from aquarium.agent.errors import ConfigError
from aquarium.agent.identity import resolve
from aquarium.collector import Store


@pytest.fixture(autouse=True)
def _no_launcher_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    """Also those the shared fixture does not know (the machine running the tests may be a SLURM node)."""
    for variable in [*env.LAUNCHER, env.RANK, env.WORLD_SIZE, env.RUN_ID]:
        monkeypatch.delenv(variable.name, raising=False)


BAD_VALUES = [
    ("RANK", "abc"),
    ("RANK", "-1"),
    ("RANK", "1.5"),
    ("WORLD_SIZE", "four"),
    ("WORLD_SIZE", "0"),
    ("LOCAL_RANK", "x"),
    ("SLURM_PROCID", "abc"),
    ("SLURM_NTASKS", "-2"),
    ("SLURM_LOCALID", "first"),
    ("SLURM_JOB_ID", "job-1"),
    ("TORCHELASTIC_RUN_ID", "///"),
    ("TORCHELASTIC_RUN_ID", "a\nb"),
    ("AQUARIUM_RANK", "abc"),
    ("AQUARIUM_RANK", "-1"),
    ("AQUARIUM_WORLD_SIZE", "0"),
]


@pytest.mark.parametrize("name, value", BAD_VALUES)
def test_a_bad_launcher_value_raises_naming_the_variable_and_the_value(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError) as info:
        resolve()
    assert info.value.name == name and info.value.value == value
    assert f"{name}={value!r}" in str(info.value)


@pytest.mark.parametrize(
    "name, value, override",
    [
        ("RANK", "abc", "AQUARIUM_RANK"),
        ("SLURM_NTASKS", "x", "AQUARIUM_WORLD_SIZE"),
        ("SLURM_JOB_ID", "x", "AQUARIUM_RUN_ID"),
    ],
)
def test_a_launchers_bad_value_says_how_to_override_it(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str, override: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=f"set {override}"):
        resolve()
    monkeypatch.setenv(override, "7")
    resolve()


def test_every_launcher_variable_is_declared_in_env() -> None:
    declared = {variable.name for variable in env.LAUNCHER}
    assert {name for name, _ in BAD_VALUES if not name.startswith("AQUARIUM_")} <= declared


def test_init_raises_before_starting_anything(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    monkeypatch.setenv("RANK", "abc")
    with pytest.raises(ConfigError, match="RANK='abc'"):
        aq.init(experiment="e", mode="offline")
    assert not data_dir.exists()


def test_an_aquarium_variable_wins_and_the_launchers_is_then_not_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANK", "abc")
    monkeypatch.setenv("AQUARIUM_RANK", "2")
    assert resolve().rank == 2
    assert resolve(rank=1).rank == 1


def test_local_rank_from_torchrun_or_slurm(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    assert resolve().local_rank is None
    monkeypatch.setenv("SLURM_LOCALID", "3")
    assert resolve().local_rank == 3
    monkeypatch.setenv("LOCAL_RANK", "1")
    run = aq.init(experiment="e", mode="offline")
    assert run.identity.local_rank == 1
    run.finish()
    with Store(data_dir) as store:
        store.ingest_spool()
        assert store.get_run(run.id)["meta"]["local_rank"] == 1


@pytest.mark.parametrize(
    "variables, named",
    [
        ({"RANK": "4", "WORLD_SIZE": "4"}, "RANK=4"),
        ({"SLURM_PROCID": "8", "SLURM_NTASKS": "8"}, "SLURM_PROCID=8"),
        ({"AQUARIUM_RANK": "5", "WORLD_SIZE": "2"}, "AQUARIUM_RANK=5"),
    ],
)
def test_a_rank_outside_the_world_size_raises(
    monkeypatch: pytest.MonkeyPatch, variables: dict[str, str], named: str
) -> None:
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigError, match=named):
        resolve()


@pytest.mark.parametrize(
    "arguments, named",
    [
        ({"rank": -1}, "rank=-1"),
        ({"rank": "1"}, "rank='1'"),
        ({"world_size": 0}, "world_size=0"),
        ({"rank": True}, "rank"),
    ],
)
def test_bad_arguments_raise_config_errors(arguments: dict[str, object], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        resolve(**arguments)  # type: ignore[arg-type]


def test_good_values_still_work(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "job:7/a")
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("WORLD_SIZE", "8")
    ident = resolve()
    assert (ident.run_id, ident.rank, ident.world_size) == ("torchrun-job-7-a", 3, 8)
    monkeypatch.setenv("TORCHELASTIC_RUN_ID", "none")
    monkeypatch.setenv("SLURM_JOB_ID", "123")
    assert resolve().run_id == "slurm-123"
    assert resolve(rank=2).world_size == 8
