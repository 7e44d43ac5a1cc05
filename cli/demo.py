"""`aquarium demo`: a few realistic multi-rank runs, logged through the real agent.

Every rank is a real ``aquarium.agent`` Run (the same run id, ranks 0..n-1), so the demo goes
the way a training job's points go. With Redis reachable it ships through Redis; if no
collector is running, it drains the stream itself with a burst collector, so `aquarium ls`
lists the runs as soon as the demo returns. A collector that is running (`aquarium up`) stores
them instead, into its own data dir. Without Redis the runs are logged offline into the spool
under the data dir, and the spool is ingested into the store.
"""

from __future__ import annotations

import math
import os
import random
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import redis

import aquarium.agent as aq
from aquarium.agent.redis_keys import RedisKeys
from aquarium.collector import Collector, CollectorSettings

from .activity import active_collectors
from .demo_figure import CurveFigure
from .options import data_dir_option, plural, redis_options, say
from .redis_probe import connect, probe

EXPERIMENT = "demo"
CONFIGS = [
    {"optimizer": "adamw", "lr": 3e-4, "batch_size": 64, "weight_decay": 0.05},
    {"optimizer": "sgd", "lr": 0.1, "batch_size": 128, "momentum": 0.9},
    {"optimizer": "adamw", "lr": 1e-3, "batch_size": 32, "weight_decay": 0.01},
    {"optimizer": "lion", "lr": 1e-4, "batch_size": 256, "weight_decay": 0.1},
]


@dataclass
class DemoResult:
    run_ids: list[str]
    online: bool
    points: int = 0
    stored_by: str = ""  # who stored the runs, as the phrase after "stored by"
    batches: int = 0
    notes: list[str] = field(default_factory=list)


def curve(config: dict[str, Any], step: int, steps: int, rank: int, rng: random.Random) -> dict[str, float]:
    """One training step's metrics: warmup + cosine lr, loss decaying with noise, accuracy rising."""
    warmup = max(steps // 20, 1)
    base_lr = float(config["lr"])
    if step < warmup:
        lr = base_lr * (step + 1) / warmup
    else:
        lr = base_lr * 0.5 * (1 + math.cos(math.pi * (step - warmup) / max(steps - warmup, 1)))
    speed = 4.0 + 2.0 * math.log10(base_lr / 1e-4)  # larger learning rates converge faster here
    progress = step / max(steps, 1)
    floor = 0.25 + 0.05 * (config["batch_size"] / 256)
    loss = floor + (2.3 - floor) * math.exp(-speed * progress) + rng.gauss(0, 0.04) * (1 + rank * 0.1)
    accuracy = 0.93 * (1 - math.exp(-speed * 1.2 * progress)) + rng.gauss(0, 0.01)
    grad_norm = 0.5 + 2.0 * math.exp(-speed * progress) + abs(rng.gauss(0, 0.1))
    return {"loss": max(loss, 0.01), "accuracy": min(max(accuracy, 0.0), 1.0), "lr": lr, "grad_norm": grad_norm}


def run_demo(
    data_dir: Path,
    redis_url: str,
    prefix: str,
    *,
    runs: int = 3,
    ranks: int = 2,
    steps: int = 2000,
    seed: int | None = None,
    say: Callable[[str], None] = lambda _: None,
) -> DemoResult:
    unreachable = probe(redis_url)
    online = unreachable is None
    result = DemoResult([], online)
    if online:
        say(f"logging {_shape(runs, ranks, steps)} through Redis at {redis_url}")
    else:
        say(
            f"no Redis at {redis_url} ({unreachable}): logging {_shape(runs, ranks, steps)} "
            f"offline into {data_dir / 'spool'}"
        )
    uploads = online and _uploads_possible(redis_url, prefix)
    rng = random.Random(seed)
    batch = secrets.token_hex(3)
    val_every = max(steps // 20, 1)
    all_committed = True
    for i in range(runs):
        config = dict(CONFIGS[i % len(CONFIGS)], epochs=max(steps // 500, 1), seed=i)
        run_id = f"demo-{batch}-{i}"
        name = f"{config['optimizer']}-lr{config['lr']:g}-bs{config['batch_size']}"
        members = [
            aq.init(
                experiment=EXPERIMENT,
                name=name,
                config=config,
                run_id=run_id,
                rank=rank,
                world_size=ranks,
                tags={"demo": "", "model": "resnet18"},
                redis_url=redis_url,
                prefix=prefix,
                data_dir=data_dir,
                spool_dir=data_dir / "spool",
                mode="online" if online else "offline",
            )
            for rank in range(ranks)
        ]
        losses: list[float] = []
        for step in range(steps):
            for rank, member in enumerate(members):
                metrics = curve(config, step, steps, rank, rng)
                member.log(metrics, step=step)
                if rank == 0:
                    losses.append(metrics["loss"])
                if (step + 1) % val_every == 0:
                    metrics = curve(config, step, steps, rank, rng)  # a validation pass
                    member.log(
                        {"val_loss": metrics["loss"] * 1.08, "val_accuracy": metrics["accuracy"] * 0.97}, step=step
                    )
        if uploads:
            _log_artifacts(members[0], data_dir / "demo-artifacts" / run_id, losses, steps - 1, rng)
        for member in members:
            report = member.finish("completed")
            result.points += report.points
            all_committed &= report.committed_seq == report.last_seq
        result.run_ids.append(run_id)
    if not online:
        _ingest_offline(data_dir, result)
    elif not all_committed:
        _drain(data_dir, redis_url, prefix, result)
    else:
        result.stored_by = "a running collector"
    return result


def _uploads_possible(redis_url: str, prefix: str) -> bool:
    """Artifacts go to a collector's HTTP API: one is named, or one advertises itself in Redis."""
    if os.environ.get("AQUARIUM_API_URL"):
        return True
    client = connect(redis_url)
    try:
        return bool(client.hget(RedisKeys(prefix).api, "url"))
    except redis.RedisError:
        return False
    finally:
        client.close()


def _log_artifacts(run: aq.Run, folder: Path, losses: list[float], step: int, rng: random.Random) -> None:
    """What a training script keeps besides its curves: a checkpoint and a figure of the loss."""
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = folder / "model.pt"
    checkpoint.write_bytes(rng.randbytes(256 * 1024))
    run.log_model(checkpoint, framework="pytorch", name="checkpoints/model.pt", step=step)
    run.log_figure(CurveFigure(losses), "plots/training_loss.png", step=step)


def _shape(runs: int, ranks: int, steps: int) -> str:
    return f"{plural(runs, 'run')} x {plural(ranks, 'rank')} x {plural(steps, 'step')}"


def _ingest_offline(data_dir: Path, result: DemoResult) -> None:
    from aquarium.collector import Store

    with Store(data_dir) as store:
        report = store.ingest_spool()
    result.stored_by, result.batches = "the local store", report.stored


def _drain(data_dir: Path, redis_url: str, prefix: str, result: DemoResult) -> None:
    """No collector committed the runs: store them, unless a running collector is about to."""
    keys = RedisKeys(prefix)
    client = connect(redis_url)
    try:
        activity = active_collectors(client, keys)
    finally:
        client.close()
    if activity.names:
        result.stored_by = f"the running collector ({', '.join(activity.names)})"
        result.notes.append("a collector is running: it stores the runs into its own data dir")
        return
    collector = Collector(
        CollectorSettings.from_env(redis_url=redis_url, data_dir=data_dir, prefix=prefix, consumer="aquarium-demo")
    )
    try:
        stats = collector.run(burst=True)
    finally:
        collector.close()
    result.stored_by, result.batches = "a burst collector the demo started", stats.stored
    result.notes.append(
        "no collector was running, so the demo stored the runs itself; "
        "run `aquarium up` (or `aquarium collector`) for your own training scripts"
    )


@click.command()
@redis_options()
@data_dir_option
@click.option("--runs", type=click.IntRange(min=1), default=3, show_default=True, help="How many runs.")
@click.option("--ranks", type=click.IntRange(min=1), default=2, show_default=True, help="Ranks per run.")
@click.option("--steps", type=click.IntRange(min=1), default=2000, show_default=True, help="Training steps per rank.")
@click.option("--seed", type=int, default=None, help="Seed of the noise, for repeatable curves.")
def demo(redis_url: str, prefix: str, data_dir: Path, runs: int, ranks: int, steps: int, seed: int | None) -> None:
    """Log a few realistic multi-rank runs through the real agent (experiment "demo").

    Curves: decaying loss with noise, rising accuracy, a warmup + cosine lr schedule, val
    metrics every steps/20 steps; params like lr, batch_size, optimizer. With Redis reachable it
    ships through Redis (and stores the runs itself when no collector is running); without,
    it logs offline and ingests the spool. Either way `aquarium ls` lists them afterwards.
    """
    result = run_demo(data_dir, redis_url, prefix, runs=runs, ranks=ranks, steps=steps, seed=seed, say=say)
    for note in result.notes:
        say(note)
    shape = f"{plural(len(result.run_ids), 'run')} x {plural(ranks, 'rank')} ({plural(result.points, 'point')})"
    say(f"logged {shape}: {', '.join(result.run_ids)}")
    say(f"stored by {result.stored_by}; see them with `aquarium ls` and `aquarium show {result.run_ids[0]}`")
