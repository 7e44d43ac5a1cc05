"""Every AQUARIUM_* environment variable, declared once with its type, default and meaning.

Settings resolve in three levels: explicit argument, then the environment variable, then the
default. Errors name the variable and the bad value.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


@dataclass(frozen=True)
class EnvVar(Generic[T]):
    name: str
    parse: Callable[[str], T]
    default: T
    doc: str

    def get(self, explicit: T | None = None) -> T:
        """The explicit value if given, else the parsed variable, else the default."""
        if explicit is not None:
            return explicit
        raw = os.environ.get(self.name)
        if raw is None or raw == "":
            return self.default
        try:
            return self.parse(raw)
        except (TypeError, ValueError) as e:
            raise ConfigError(self.name, raw, str(e) or f"expected {self.parse.__name__}") from e


def _positive_float(raw: str) -> float:
    value = float(raw)
    if not value > 0:
        raise ValueError("must be a positive number")
    return value


def _non_negative_float(raw: str) -> float:
    value = float(raw)
    if not value >= 0:
        raise ValueError("must be zero or a positive number")
    return value


def _flag(raw: str) -> bool:
    value = raw.strip().lower()
    if value not in ("1", "true", "yes", "on", "0", "false", "no", "off"):
        raise ValueError("must be 1/true/yes/on or 0/false/no/off")
    return value in ("1", "true", "yes", "on")


def _mode(raw: str) -> str:
    if raw not in ("online", "offline"):
        raise ValueError("must be 'online' or 'offline'")
    return raw


REDIS_URL = EnvVar[str](
    "AQUARIUM_REDIS_URL", str, "redis://127.0.0.1:6379/0", "Redis the agent ships to and the collector reads from."
)
DATA_DIR = EnvVar[str](
    "AQUARIUM_DATA_DIR", str, "aquarium_data", "Base directory of the store, the artifacts and the local spool."
)
SPOOL_DIR = EnvVar[str](
    "AQUARIUM_SPOOL_DIR", str, "", "Where the agent spools batches while Redis is unreachable (default DATA_DIR/spool)."
)
MODE = EnvVar[str](
    "AQUARIUM_MODE",
    _mode,
    "online",
    "'offline' never contacts Redis: everything goes to the spool for `aquarium sync`.",
)
RUN_ID = EnvVar[str]("AQUARIUM_RUN_ID", str, "", "Run id every rank of a job shares.")
RANK = EnvVar[int]("AQUARIUM_RANK", int, -1, "This process's rank (else RANK, SLURM_PROCID, 0).")
WORLD_SIZE = EnvVar[int]("AQUARIUM_WORLD_SIZE", int, -1, "Ranks in the job (else WORLD_SIZE, SLURM_NTASKS, 1).")
EXPERIMENT = EnvVar[str]("AQUARIUM_EXPERIMENT", str, "default", "Experiment a new run belongs to.")
RUN_NAME = EnvVar[str]("AQUARIUM_RUN_NAME", str, "", "Display name of a new run.")
FLUSH_INTERVAL = EnvVar[float](
    "AQUARIUM_FLUSH_INTERVAL", _positive_float, 0.1, "Seconds between the shipper's batch cuts."
)
MAX_MEMORY_MB = EnvVar[float](
    "AQUARIUM_MAX_MEMORY_MB",
    _positive_float,
    64.0,
    "Shipped-but-uncommitted batches kept in memory before spilling to the spool.",
)
FINISH_TIMEOUT = EnvVar[float](
    "AQUARIUM_FINISH_TIMEOUT",
    _positive_float,
    10.0,
    "Longest finish() waits for the shipper to hand everything to Redis or the spool.",
)
COMMIT_WAIT = EnvVar[float](
    "AQUARIUM_COMMIT_WAIT",
    _non_negative_float,
    2.0,
    "Seconds finish() waits for the collector to commit before spooling the rest.",
)
STREAM_PREFIX = EnvVar[str](
    "AQUARIUM_PREFIX",
    str,
    "aquarium",
    "Prefix of every Redis key Aquarium uses (several installs can share one Redis).",
)

DURABLE = EnvVar[bool](
    "AQUARIUM_DURABLE",
    _flag,
    False,
    "Write (and fsync) every batch to the spool before shipping it: a killed process loses at most one flush.",
)

ALL = [
    REDIS_URL,
    DATA_DIR,
    SPOOL_DIR,
    MODE,
    RUN_ID,
    RANK,
    WORLD_SIZE,
    EXPERIMENT,
    RUN_NAME,
    FLUSH_INTERVAL,
    MAX_MEMORY_MB,
    FINISH_TIMEOUT,
    COMMIT_WAIT,
    STREAM_PREFIX,
    DURABLE,
]
