"""Who is logging: run id, rank, world size and incarnation, so every rank of a job joins one run.

The run id comes from the argument, else AQUARIUM_RUN_ID, else the launcher (torchrun's
TORCHELASTIC_RUN_ID, SLURM's SLURM_JOB_ID), else a fresh random id; rank and world size likewise
(every variable is declared in env.py; a bad value raises instead of falling back). The
incarnation is new in every process, sorts by start time, and tells restarts of the same rank
apart.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from dataclasses import dataclass

from . import env
from .errors import ConfigError, InvalidNameError

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Identity:
    run_id: str
    rank: int
    world_size: int
    incarnation: str
    host: str
    pid: int
    local_rank: int | None = None


def validate_run_id(run_id: str) -> str:
    if not isinstance(run_id, str) or not RUN_ID_PATTERN.match(run_id):
        raise InvalidNameError(
            "run id", run_id, "use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return run_id


def new_run_id() -> str:
    return secrets.token_hex(6)


def new_incarnation() -> str:
    """Sortable by start time (microseconds, hex) and unique (random suffix)."""
    return f"{time.time_ns() // 1000:014x}-{secrets.token_hex(3)}"


def _launcher_run_id() -> str | None:
    torchrun = env.TORCHELASTIC_RUN_ID.get()
    if torchrun is not None:
        return "torchrun-" + re.sub(r"[^A-Za-z0-9._-]", "-", torchrun)[:110]
    slurm = env.SLURM_JOB_ID.get()
    if slurm is not None:
        return "slurm-" + slurm[:110]
    return None


def _from_argument(name: str, value: object, minimum: int) -> tuple[str, int]:
    if type(value) is not int or value < minimum:
        kind = "non-negative" if minimum == 0 else "positive"
        raise ConfigError(name, value, f"must be a {kind} integer")
    return name, value


def resolve(run_id: str | None = None, rank: int | None = None, world_size: int | None = None) -> Identity:
    """Who this process is; raises ConfigError for an unusable argument or variable, naming it."""
    rid = run_id or env.RUN_ID.get() or _launcher_run_id() or new_run_id()
    rank_from = (
        _from_argument("rank", rank, 0)
        if rank is not None
        else env.first_set(env.RANK, env.LAUNCHER_RANK, env.SLURM_PROCID)
    )
    size_from = (
        _from_argument("world_size", world_size, 1)
        if world_size is not None
        else env.first_set(env.WORLD_SIZE, env.LAUNCHER_WORLD_SIZE, env.SLURM_NTASKS)
    )
    local = env.first_set(env.LAUNCHER_LOCAL_RANK, env.SLURM_LOCALID)
    r = rank_from[1] if rank_from else 0
    if rank_from and size_from and r >= size_from[1]:
        raise ConfigError(rank_from[0], r, f"a rank must be below the world size ({size_from[0]}={size_from[1]})")
    ws = size_from[1] if size_from else r + 1
    return Identity(
        validate_run_id(rid),
        r,
        ws,
        new_incarnation(),
        socket.gethostname(),
        os.getpid(),
        local_rank=local[1] if local else None,
    )
