"""Every environment variable the agent reads, declared once with its type, default and meaning.

Settings resolve in three levels: explicit argument, then the AQUARIUM_* variable, then (for
who is logging) the launcher's variables (torchrun, SLURM), then the default. A set variable
with an unusable value raises ConfigError naming the variable and the value: never a silent
fallback (``RANK=abc`` is an error, not rank 0).
"""

from __future__ import annotations

import os
import re
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
    hint: str = ""  # how to get past a bad value someone else set (a launcher's variables)

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
            reason = str(e) or f"expected {self.parse.__name__}"
            raise ConfigError(self.name, raw, f"{reason}; {self.hint}" if self.hint else reason) from e


def first_set(*variables: EnvVar[T | None]) -> tuple[str, T] | None:
    """``(name, value)`` of the first variable that is set, reading no further; None if none is."""
    for variable in variables:
        value = variable.get()
        if value is not None:
            return variable.name, value
    return None


_DIGITS = re.compile(r"[0-9]+")


def _non_negative_int(raw: str) -> int:
    if not _DIGITS.fullmatch(raw.strip()):
        raise ValueError("must be a non-negative integer")
    return int(raw)


def _positive_int(raw: str) -> int:
    if not _DIGITS.fullmatch(raw.strip()) or int(raw) < 1:
        raise ValueError("must be a positive integer")
    return int(raw)


def _slurm_job_id(raw: str) -> str:
    if not _DIGITS.fullmatch(raw.strip()):
        raise ValueError("SLURM job ids are integers")
    return raw.strip()


def _rendezvous_id(raw: str) -> str | None:
    """torchrun's rendezvous id; "none" (torchrun's default when none was given) means unset."""
    if raw == "none":
        return None
    if not raw.isprintable() or not any(c.isascii() and c.isalnum() for c in raw):
        raise ValueError("a rendezvous id needs letters or digits and no control characters")
    return raw


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
RANK = EnvVar[int | None]("AQUARIUM_RANK", _non_negative_int, None, "This process's rank (else RANK, SLURM_PROCID, 0).")
WORLD_SIZE = EnvVar[int | None](
    "AQUARIUM_WORLD_SIZE", _positive_int, None, "Ranks in the job (else WORLD_SIZE, SLURM_NTASKS, 1)."
)
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

API_URL = EnvVar[str](
    "AQUARIUM_API_URL",
    str,
    "",
    "HTTP API artifacts are uploaded to (default: the URL a collector serving the API publishes in Redis).",
)
API_TOKEN = EnvVar[str](
    "AQUARIUM_API_TOKEN", str, "", "Bearer token sent with every request to the HTTP API (artifact uploads)."
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
    API_URL,
    API_TOKEN,
]

# Set by launchers, read only when the argument and the AQUARIUM_* variable are not given.
_RANK_HINT = "set AQUARIUM_RANK or pass rank= to init() to override it"
_SIZE_HINT = "set AQUARIUM_WORLD_SIZE or pass world_size= to init() to override it"
_RUN_ID_HINT = "set AQUARIUM_RUN_ID or pass run_id= to init() to override it"
LAUNCHER_RANK = EnvVar[int | None](
    "RANK", _non_negative_int, None, "Global rank (torchrun, torch.distributed).", _RANK_HINT
)
LAUNCHER_WORLD_SIZE = EnvVar[int | None]("WORLD_SIZE", _positive_int, None, "Ranks in the job (torchrun).", _SIZE_HINT)
LAUNCHER_LOCAL_RANK = EnvVar[int | None]("LOCAL_RANK", _non_negative_int, None, "Rank on this node (torchrun).")
SLURM_PROCID = EnvVar[int | None]("SLURM_PROCID", _non_negative_int, None, "Global rank (SLURM srun).", _RANK_HINT)
SLURM_NTASKS = EnvVar[int | None]("SLURM_NTASKS", _positive_int, None, "Ranks in the job (SLURM).", _SIZE_HINT)
SLURM_LOCALID = EnvVar[int | None]("SLURM_LOCALID", _non_negative_int, None, "Rank on this node (SLURM).")
SLURM_JOB_ID = EnvVar[str | None](
    "SLURM_JOB_ID", _slurm_job_id, None, "Run id slurm-<id> for every rank of the job.", _RUN_ID_HINT
)
TORCHELASTIC_RUN_ID = EnvVar[str | None](
    "TORCHELASTIC_RUN_ID",
    _rendezvous_id,
    None,
    "Run id torchrun-<id> for every rank ('none' is unset; characters other than A-Z a-z 0-9 . _ - become -).",
    _RUN_ID_HINT,
)

LAUNCHER = [
    LAUNCHER_RANK,
    LAUNCHER_WORLD_SIZE,
    LAUNCHER_LOCAL_RANK,
    SLURM_PROCID,
    SLURM_NTASKS,
    SLURM_LOCALID,
    SLURM_JOB_ID,
    TORCHELASTIC_RUN_ID,
]
