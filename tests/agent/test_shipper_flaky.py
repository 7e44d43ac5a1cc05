"""Replay over a flaky link: a proxy that resets every connection after a few MiB.

Each replay round trip is small (about 1 MiB) and a success resets the reconnect backoff, so a
backlog many times larger than what one connection carries still drains, between resets.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from ledger import WAIT, CollectorThread, Ledger, start_run
from servers import FaultyRedis

from aquarium.agent.link import Link

CUT_AFTER_BYTES = 3 << 20


class ResettingProxy:
    """Forwards TCP to ``upstream``; closes each connection once it carried CUT_AFTER_BYTES."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.resets = 0
        self._stopped = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._stopped:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream_port))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, False), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, counted: bool) -> None:
        carried = 0
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                target.sendall(data)
                carried += len(data)
                if counted and carried >= CUT_AFTER_BYTES:
                    self.resets += 1
                    break
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self._stopped = True
        self.listener.close()


@pytest.fixture
def flaky_url(fresh_redis: FaultyRedis) -> Iterator[str]:
    proxy = ResettingProxy(int(fresh_redis.url.rsplit(":", 1)[1].split("/")[0]))
    yield f"redis://127.0.0.1:{proxy.port}/0"
    proxy.close()
    assert proxy.resets > 0, "the proxy never cut a connection: the test tested nothing"


def test_a_large_spool_replays_through_a_link_that_resets_every_few_mib(
    fresh_redis: FaultyRedis, flaky_url: str, data_dir: Path
) -> None:
    fresh_redis.kill()
    ledger = Ledger()
    run = start_run(flaky_url, data_dir, "flaky", flush_interval=3600.0)
    for chunk in range(4):  # ~4 x 5 MiB spooled while Redis is down
        for step in range(chunk * 200_000, chunk * 200_000 + 200_000):
            ledger.log(run, step)
        assert run.flush(timeout=WAIT)
    assert run.stats.batches_spooled > 16
    fresh_redis.start()
    with CollectorThread(fresh_redis.url, data_dir, ingest_spool=False) as running:  # the collector reads directly
        report = run.finish(timeout=WAIT)
        assert report.committed_seq == report.last_seq and report.spooled_files == [], report
        ledger.check(running.collector.store)
    assert run.stats.redis_errors > 0  # it did meet resets


def test_any_success_resets_the_backoff(fresh_redis: FaultyRedis) -> None:
    link = Link(fresh_redis.url, 1.0, 3600.0, lambda cause, e: None)
    assert link.connect(wait=True) is not None
    fresh_redis.kill()
    assert link.exchange([b"x"], "s", "wm", [], "xadd") is None and link.failures == 1
    fresh_redis.start()
    link.retry_now()
    assert link.connect(wait=True) is not None and link.failures == 0
    assert link.exchange([b"x"], "s", "wm", [], "replay") is not None and link.failures == 0
    link.close()
