"""Agent settings: a frozen dataclass resolved from arguments, AQUARIUM_* variables and defaults."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import env
from .errors import ConfigError


@dataclass(frozen=True)
class AgentSettings:
    redis_url: str = env.REDIS_URL.default
    mode: str = env.MODE.default
    data_dir: Path = Path(env.DATA_DIR.default)
    spool_dir: Path = Path(env.DATA_DIR.default) / "spool"
    flush_interval: float = env.FLUSH_INTERVAL.default
    max_memory_bytes: int = int(env.MAX_MEMORY_MB.default * 2**20)
    finish_timeout: float = env.FINISH_TIMEOUT.default
    commit_wait: float = env.COMMIT_WAIT.default
    prefix: str = env.STREAM_PREFIX.default
    socket_timeout: float = 1.0
    durable: bool = env.DURABLE.default

    @classmethod
    def from_env(cls, **explicit: Any) -> "AgentSettings":
        """Explicit keyword arguments win over AQUARIUM_* variables, which win over defaults."""
        unknown = set(explicit) - set(cls.__dataclass_fields__)
        if unknown:
            raise ConfigError(", ".join(sorted(unknown)), explicit[sorted(unknown)[0]], "unknown setting")
        data_dir = Path(env.DATA_DIR.get(explicit.get("data_dir")))
        spool = explicit.get("spool_dir") or env.SPOOL_DIR.get() or data_dir / "spool"
        mode = env.MODE.get(explicit.get("mode"))
        if mode not in ("online", "offline"):
            raise ConfigError("mode", mode, "must be 'online' or 'offline'")
        max_mb = explicit.get("max_memory_bytes")
        return cls(
            redis_url=env.REDIS_URL.get(explicit.get("redis_url")),
            mode=mode,
            data_dir=data_dir,
            spool_dir=Path(spool),
            flush_interval=env.FLUSH_INTERVAL.get(explicit.get("flush_interval")),
            max_memory_bytes=int(max_mb) if max_mb is not None else int(env.MAX_MEMORY_MB.get() * 2**20),
            finish_timeout=env.FINISH_TIMEOUT.get(explicit.get("finish_timeout")),
            commit_wait=env.COMMIT_WAIT.get(explicit.get("commit_wait")),
            prefix=env.STREAM_PREFIX.get(explicit.get("prefix")),
            socket_timeout=float(explicit.get("socket_timeout", 1.0)),
            durable=env.DURABLE.get(explicit.get("durable")),
        )
