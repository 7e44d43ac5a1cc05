"""finish() waits on the collector's commit notice (pub/sub), and polls when pub/sub is refused.

A real redis-server: the agent finishes in a thread while a collector group exists but no
collector runs; once the agent waits, a burst collector commits and finish() returns.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import redis
from ledger import burst, start_run, wait_until

from aquarium.agent import link
from aquarium.agent.redis_keys import RedisKeys
from aquarium.agent.stats import FinishReport

KEYS = RedisKeys()


def subscribers(client: redis.Redis, channel: str) -> int:
    return int(dict(client.pubsub_numsub(channel))[channel.encode()])


def finish_in_thread(run: Any) -> tuple[threading.Thread, list[FinishReport]]:
    reports: list[FinishReport] = []
    thread = threading.Thread(target=lambda: reports.append(run.finish()), daemon=True)
    thread.start()
    return thread, reports


@pytest.fixture
def woken(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """What each wait of the commit notices returned (True: a notice or the subscription ended it)."""
    results: list[bool] = []
    wait = link.CommitNotices.wait

    def recording(self: link.CommitNotices, timeout: float) -> bool:
        results.append(wait(self, timeout))
        return results[-1]

    monkeypatch.setattr(link.CommitNotices, "wait", recording)
    return results


def test_finish_wakes_on_the_commit_notice(
    redis_url: str, data_dir: Path, client: redis.Redis, woken: list[bool]
) -> None:
    client.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)  # a collector is expected
    run = start_run(redis_url, data_dir / "agent", "notified")
    for step in range(50):
        run.log({"x": float(step)}, step=step)
    thread, reports = finish_in_thread(run)
    wait_until(lambda: subscribers(client, KEYS.committed("notified")), "finish() subscribes to the commit notice")
    burst(redis_url, data_dir)
    thread.join(30)
    assert reports and reports[0].committed_seq == reports[0].last_seq and not reports[0].timed_out
    assert any(woken)
    assert subscribers(client, KEYS.committed("notified")) == 0  # closed after finish


def test_finish_polls_when_pub_sub_is_refused(
    redis_url: str, data_dir: Path, client: redis.Redis, woken: list[bool]
) -> None:
    client.acl_setuser(
        "nosub", enabled=True, passwords=["+pw"], keys=["*"], channels=["*"], commands=["+@all", "-subscribe"]
    )
    client.xgroup_create(KEYS.stream, KEYS.group, id="0", mkstream=True)
    run = start_run(redis_url.replace("redis://", "redis://nosub:pw@"), data_dir / "agent", "refused")
    for step in range(50):
        run.log({"x": float(step)}, step=step)
    thread, reports = finish_in_thread(run)
    wait_until(lambda: woken, "finish() waits for the commit")
    burst(redis_url, data_dir)
    thread.join(30)
    assert reports and reports[0].committed_seq == reports[0].last_seq and not reports[0].timed_out
    assert not any(woken)  # refused: every wait was a short poll
    client.acl_deluser("nosub")
