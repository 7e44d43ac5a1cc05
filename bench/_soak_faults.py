"""What the soak runs and breaks: a redis-server (AOF on, restarted on the same port), two
`aquarium collector` processes sharing the consumer group, the TCP proxy the agents connect
through, and the spool on a small tmpfs that can be filled up.

Each fault is one method that breaks something, waits, and repairs it, so faults run one after
the other and every one is over when ``inject`` returns; ``heal()`` repairs whatever an
interrupted fault left broken.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import _processes as P
from _proxy import FaultyProxy

FAULTS = (
    "redis_kill_aof",  # kill -9, restart from the append-only file
    "redis_kill_empty",  # kill -9, restart with the data gone
    "redis_pause",  # SIGSTOP / SIGCONT
    "collector_kill",  # SIGKILL one collector, restart it (same or new consumer name)
    "proxy_drop",  # close every agent connection
    "proxy_reset",  # RST every agent connection
    "proxy_stall",  # hold every byte for a while
    "disk_full",  # fill the spool's filesystem while the agents cannot reach Redis
)
SPOOL_FS_BYTES = 64 << 20


@dataclass
class Fault:
    kind: str
    at: float  # wall time it started
    seconds: float
    detail: str = ""


@dataclass
class Cluster:
    root: Path
    rng: random.Random
    collectors_n: int = 2
    claim_idle: float = 2.0
    max_outage: float = 8.0  # the longest pause, stall or disk-full outage
    faults: list[Fault] = field(default_factory=list)
    disk_note: str = ""
    crashes: list[str] = field(default_factory=list)  # collectors that exited without being killed

    def __post_init__(self) -> None:
        self.store = self.root / "store"
        self.spool = self.store / "spool"
        self.logs = self.root / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self.spool.mkdir(parents=True, exist_ok=True)
        self.redis: Any = None
        self.proxy: FaultyProxy | None = None
        self.collectors: list[subprocess.Popen[bytes] | None] = [None] * self.collectors_n
        self._names = [f"soak-{i}" for i in range(self.collectors_n)]
        self._restarts = 0
        self._mounted = False
        self._filler = self.spool / ".filler"

    # -- lifetime ------------------------------------------------------------------------------
    def start(self) -> "Cluster":
        self._mount_spool()
        self.redis = P.redis_server(self.root / "redis", aof="everysec").start()
        self.proxy = FaultyProxy(self.redis.port).start()
        for i in range(self.collectors_n):
            self._start_collector(i)
        return self

    @property
    def redis_url(self) -> str:
        return str(self.redis.url)

    @property
    def agent_url(self) -> str:
        assert self.proxy is not None
        return self.proxy.url

    def heal(self) -> None:
        """Everything up and flowing again."""
        P.resume(self.redis.process)
        if self.redis.process.poll() is not None:
            self._restart_redis(keep_data=True)
        if self.proxy is not None:
            self.proxy.heal()
        self._free_disk()
        self.supervise()

    def stop_collectors(self) -> None:
        for proc in self.collectors:
            P.stop_collector(proc)

    def close(self, keep: bool = False) -> None:
        self.stop_collectors()
        if keep and self._mounted:  # the tmpfs goes away with the unmount
            shutil.copytree(self.spool, self.root / "spool-kept", dirs_exist_ok=True)
        if self.proxy is not None:
            self.proxy.close()
        if self.redis is not None:
            P.resume(self.redis.process)
            self.redis.stop()
        self._free_disk()
        if self._mounted:
            subprocess.run(["umount", "-l", str(self.spool)], check=False)

    # -- faults --------------------------------------------------------------------------------
    def supervise(self) -> None:
        """Restart a collector that exited on its own (as `aquarium up` would), noting its last words."""
        for i, proc in enumerate(self.collectors):
            if proc is not None and proc.poll() is not None:
                log = (self.logs / f"collector-{i}.log").read_text(errors="replace").strip().splitlines()
                self.crashes.append(f"collector {i} exited {proc.returncode}: {log[-1][:160] if log else ''}")
                self._start_collector(i)

    def inject(self, kind: str) -> Fault:
        self.supervise()
        fault = Fault(kind, time.time(), 0.0)
        started = time.monotonic()
        fault.detail = getattr(self, kind)()
        fault.seconds = time.monotonic() - started
        self.faults.append(fault)
        return fault

    def redis_kill_aof(self) -> str:
        return self._kill_redis(keep_data=True)

    def redis_kill_empty(self) -> str:
        return self._kill_redis(keep_data=False)

    def redis_pause(self) -> str:
        seconds = self.rng.uniform(1.0, self.max_outage)
        P.pause(self.redis.process)
        time.sleep(seconds)
        P.resume(self.redis.process)
        return f"paused {seconds:.1f} s"

    def collector_kill(self) -> str:
        i = self.rng.randrange(self.collectors_n)
        P.kill(self.collectors[i])
        down = self.rng.uniform(0.0, min(3.0, self.max_outage))
        time.sleep(down)
        renamed = self.rng.random() < 0.5  # a new name: its pending entries wait for XAUTOCLAIM
        if renamed:
            self._restarts += 1
            self._names[i] = f"soak-{i}-r{self._restarts}"
        self._start_collector(i)
        return f"collector {i} down {down:.1f} s, back as {self._names[i]}"

    def proxy_drop(self) -> str:
        assert self.proxy is not None
        return f"{self.proxy.drop()} connections closed"

    def proxy_reset(self) -> str:
        assert self.proxy is not None
        return f"{self.proxy.reset()} connections reset"

    def proxy_stall(self) -> str:
        assert self.proxy is not None
        seconds = self.rng.uniform(0.5, min(5.0, self.max_outage))
        self.proxy.stall(seconds)
        time.sleep(seconds)
        return f"stalled {seconds:.1f} s"

    def disk_full(self) -> str:
        """Fill the spool's filesystem, cut the agents off Redis so they must spool, then heal."""
        assert self.proxy is not None
        filled = self._fill_disk()
        seconds = self.rng.uniform(2.0, max(2.0, min(6.0, self.max_outage)))
        self.proxy.stall(seconds)
        self.proxy.reset()
        time.sleep(seconds + 0.5)
        self._free_disk()
        return f"{filled >> 20} MiB filled, agents cut off {seconds:.1f} s"

    # -- pieces --------------------------------------------------------------------------------
    def _kill_redis(self, keep_data: bool) -> str:
        P.kill(self.redis.process)
        down = self.rng.uniform(0.0, 2.0)
        time.sleep(down)
        self._restart_redis(keep_data)
        return f"down {down:.1f} s" + ("" if keep_data else ", data deleted")

    def _restart_redis(self, keep_data: bool) -> None:
        if not keep_data:
            for name in ("appendonlydir", "dump.rdb"):
                path = self.root / "redis" / name
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        port = self.redis.port
        self.redis = P.redis_server(self.root / "redis", port=port, aof="everysec").start(timeout=30.0)

    def _start_collector(self, i: int) -> None:
        self.collectors[i] = P.start_collector(
            self.redis_url,
            self.store,
            consumer=self._names[i],
            claim_idle=self.claim_idle,
            log_path=self.logs / f"collector-{i}.log",
        )

    def _mount_spool(self) -> None:
        """The spool on its own small tmpfs, so that filling it touches nothing else."""
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={SPOOL_FS_BYTES}", "tmpfs", str(self.spool)],
            capture_output=True,
            text=True,
        )
        self._mounted = proc.returncode == 0
        if not self._mounted:
            self.disk_note = f"disk_full left out: mount -t tmpfs failed ({proc.stderr.strip()[:200]})"

    def _fill_disk(self) -> int:
        st = os.statvfs(self.spool)
        free = st.f_bavail * st.f_frsize
        with open(self._filler, "wb") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, free)
            except OSError:
                pass  # full already
        for chunk in (1 << 20, 4096, 1):  # the last blocks fallocate left
            try:
                with open(self._filler, "ab") as f:
                    while True:
                        f.write(b"\0" * chunk)
                        f.flush()
            except OSError:
                continue
        return self._filler.stat().st_size

    def _free_disk(self) -> None:
        self._filler.unlink(missing_ok=True)
