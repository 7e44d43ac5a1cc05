"""How a collector is configured: argument, else AQUARIUM_* variable, else default."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aquarium.agent import env


@dataclass(frozen=True)
class CollectorSettings:
    redis_url: str = env.REDIS_URL.default
    data_dir: Path = Path(env.DATA_DIR.default)
    prefix: str = env.STREAM_PREFIX.default
    consumer: str = ""
    read_count: int = 1000
    block_ms: int = 100
    claim_idle: float = 10.0
    max_deliveries: int = 5  # an entry delivered this often and never acknowledged is a poison pill
    consumer_idle: float = 3600.0  # a consumer idle this long with nothing pending is a dead collector
    store_claim_ttl: float = 30.0  # how long a crashed collector's store keeps the prefix
    maintenance_interval: float = 1.0
    ingest_spool: bool = True

    @classmethod
    def from_env(cls, **explicit: Any) -> "CollectorSettings":
        """Explicit keyword arguments win over AQUARIUM_* variables, which win over defaults."""
        values = {k: v for k, v in explicit.items() if v is not None}
        values.setdefault("redis_url", env.REDIS_URL.get())
        values["data_dir"] = Path(values.get("data_dir") or env.DATA_DIR.get())
        values.setdefault("prefix", env.STREAM_PREFIX.get())
        return cls(**values)

    @property
    def consumer_name(self) -> str:
        return self.consumer or f"{socket.gethostname()}-{os.getpid()}"
