"""durable=True: every batch is fsynced to the spool before it is shipped, so a SIGKILLed
training process loses nothing ``log()`` accepted before its last flush, even when Redis then
loses what it held."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from servers import FaultyRedis

from aquarium.agent.settings import AgentSettings
from aquarium.collector import Store

TRAINING = """
import sys
import aquarium.agent as aq
run = aq.init("durable", run_id="killed", redis_url=sys.argv[1], data_dir=sys.argv[2], durable=sys.argv[3] == "1")
for step in range(1000):
    run.log({"x": float(step)}, step=step)
assert run.flush(timeout=30.0)
print("flushed", flush=True)
step = 1000
while True:  # still training when the kill comes
    run.log({"x": float(step)}, step=step)
    step += 1
"""


def test_a_sigkilled_durable_run_keeps_everything_flushed(fresh_redis: FaultyRedis, data_dir: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-P", "-c", TRAINING, fresh_redis.url, str(data_dir), "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
    finally:
        child.send_signal(signal.SIGKILL)
        _, err = child.communicate()
    assert line.strip() == "flushed", err
    fresh_redis.kill()  # and Redis loses what it held in memory
    with Store(data_dir) as store:
        store.ingest_spool()  # picks up the dead process's spool files
        series = store.read_series("killed", "x")
    steps = series.steps.tolist()
    assert steps[:1000] == list(range(1000)) and len(steps) == len(set(steps))
    assert series.values.tolist() == [float(s) for s in steps]


def test_durable_is_a_setting_with_an_environment_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert AgentSettings.from_env().durable is False
    monkeypatch.setenv("AQUARIUM_DURABLE", "1")
    assert AgentSettings.from_env().durable is True
    assert AgentSettings.from_env(durable=False).durable is False
