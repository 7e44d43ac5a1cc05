"""One Redis prefix feeds one store: a collector of another store refuses to start, naming the
store already there and how to run both; the same store restarted starts fine."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis
from click.testing import CliRunner
from ledger import KEYS, CollectorThread, Ledger, burst, collector_settings, make_batch, value_of, wait_until

from aquarium.agent.wire import pack_batch
from aquarium.cli import cli
from aquarium.collector import Collector, Store
from aquarium.collector.registration import StoreConflictError


def add(r: redis.Redis, ledger: Ledger, seq: int) -> None:
    steps = list(range(seq * 10, seq * 10 + 10))
    for step in steps:
        ledger.record("one-store", "x", 0, step, value_of(step, 0))
    r.xadd(KEYS.stream, {"b": pack_batch(make_batch("one-store", seq, steps))})


def store_id(data_dir: Path) -> str:
    with Store(data_dir) as store:
        return store.store_id


def crash(collector: Collector) -> None:
    """Stop a collector the way a SIGKILL does: its registration is left to expire."""
    collector.redis.close()
    collector.store.close()


def test_a_store_has_one_id_for_life(tmp_path: Path) -> None:
    first = store_id(tmp_path / "a")
    assert len(first) == 32 and store_id(tmp_path / "a") == first and store_id(tmp_path / "b") != first


def test_a_second_store_on_the_same_prefix_refuses_to_start_and_reads_nothing(
    client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    ledger = Ledger()
    with CollectorThread(redis_url, data_dir, consumer="first") as running:
        other = Collector(collector_settings(redis_url, tmp_path / "other", consumer="second"))
        try:
            add(client, ledger, 0)
            with pytest.raises(StoreConflictError) as info:
                other.run(burst=True)
            assert other.stats.entries == 0
        finally:
            other.close()
        message = str(info.value)
        for fragment in (
            str(data_dir.resolve()),
            store_id(tmp_path / "other"),
            "--port",
            "--prefix",
            "AQUARIUM_PREFIX",
        ):
            assert fragment in message, fragment
        assert running.collector.store.store_id in message
        wait_until(lambda: running.collector.stats.stored == 1, "the first collector stores the batch")
        assert "second" not in {c["name"].decode() for c in client.xinfo_consumers(KEYS.stream, KEYS.group)}
        ledger.check(running.collector.store)
    assert client.get(KEYS.store) is None  # released at the clean stop


def test_a_restarted_collector_of_the_same_store_starts_while_another_store_waits_for_expiry(
    client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    ledger = Ledger()
    add(client, ledger, 0)
    crashed = Collector(collector_settings(redis_url, data_dir))
    crashed.run(burst=True)
    crash(crashed)
    assert client.pttl(KEYS.store) > 0  # left behind, expiring

    with pytest.raises(StoreConflictError):
        burst(redis_url, tmp_path / "other")
    add(client, ledger, 1)
    restarted = burst(redis_url, data_dir)  # the same store: fine
    assert restarted.stats.stored == 1

    crashed_again = Collector(collector_settings(redis_url, data_dir))
    crashed_again.run(burst=True)
    crash(crashed_again)
    client.pexpire(KEYS.store, 1)  # what the store_claim_ttl does after the last collector died
    wait_until(lambda: not client.exists(KEYS.store), "the registration expired")
    burst(redis_url, tmp_path / "other")  # now the prefix is free
    with Store(data_dir) as store:
        ledger.check(store)


def test_two_stores_run_side_by_side_on_two_prefixes(
    client: redis.Redis, redis_url: str, data_dir: Path, tmp_path: Path
) -> None:
    with CollectorThread(redis_url, data_dir):
        other = burst(redis_url, tmp_path / "other", prefix="elsewhere")
        assert other.stats.reads > 0
        assert client.get("elsewhere:store") is None  # released
        assert client.get(KEYS.store).decode().startswith(store_id(data_dir))


def test_the_command_line_refuses_in_one_line(redis_url: str, data_dir: Path, tmp_path: Path) -> None:
    with CollectorThread(redis_url, data_dir):
        result = CliRunner().invoke(
            cli, ["collector", "--burst", "--redis-url", redis_url, "--data-dir", str(tmp_path / "other")]
        )
    assert result.exit_code == 1, result.output
    assert "already feeds another store" in result.output and "Traceback" not in result.output


def test_a_running_collector_renews_its_registration_and_stops_if_another_store_took_the_prefix(
    client: redis.Redis, redis_url: str, data_dir: Path
) -> None:
    running = CollectorThread(redis_url, data_dir, maintenance_interval=0.0)
    with pytest.raises(AssertionError, match="StoreConflictError"):
        with running:
            client.delete(KEYS.store)  # e.g. a Redis restarted empty: the next maintenance registers again
            wait_until(lambda: client.exists(KEYS.store), "registered again")
            client.set(KEYS.store, "0123456789abcdef elsewhere:/their/aquarium_data")  # another store got in
            wait_until(lambda: not running.alive, "the collector stops rather than split runs")
    assert isinstance(running.error, StoreConflictError) and "/their/aquarium_data" in str(running.error)
