"""Who is logging: run id, rank, world size and incarnation, so every rank of a job joins one run.

The run id comes from the argument, else AQUARIUM_RUN_ID, else the launcher (torchrun's
TORCHELASTIC_RUN_ID, SLURM's SLURM_JOB_ID), else a fresh random id. The incarnation is new in
every process, sorts by start time, and tells restarts of the same rank apart.
"""

from __future__ import annotations

import os
import re
import secrets
import socket
import time
from dataclasses import dataclass

from . import env
from .errors import InvalidNameError

RUN_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class Identity:
    run_id: str
    rank: int
    world_size: int
    incarnation: str
    host: str
    pid: int


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
    torchrun = os.environ.get("TORCHELASTIC_RUN_ID")
    if torchrun and torchrun != "none":
        return "torchrun-" + re.sub(r"[^A-Za-z0-9._-]", "-", torchrun)[:110]
    slurm = os.environ.get("SLURM_JOB_ID")
    if slurm:
        return "slurm-" + re.sub(r"[^A-Za-z0-9._-]", "-", slurm)[:110]
    return None


def _int_from_env(*names: str) -> int | None:
    for name in names:
        raw = os.environ.get(name)
        if raw not in (None, ""):
            try:
                return int(raw)
            except ValueError:
                continue
    return None


def resolve(run_id: str | None = None, rank: int | None = None, world_size: int | None = None) -> Identity:
    rid = run_id or env.RUN_ID.get() or _launcher_run_id() or new_run_id()
    r = rank if rank is not None else env.RANK.get()
    if r < 0:
        r = _int_from_env("RANK", "SLURM_PROCID") or 0
    ws = world_size if world_size is not None else env.WORLD_SIZE.get()
    if ws < 0:
        ws = _int_from_env("WORLD_SIZE", "SLURM_NTASKS") or 1
    if r < 0:
        raise InvalidNameError("rank", r, "ranks are non-negative integers")
    return Identity(validate_run_id(rid), r, max(ws, r + 1), new_incarnation(), socket.gethostname(), os.getpid())
