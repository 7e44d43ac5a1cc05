"""The loggers agent_overhead.py measures, one class each: set up, a ``log(d, step)`` callable,
settle, finish. Each imports its package in ``__init__`` so the import is timed apart.

Imported by the worker only: nothing here may load numpy or rich behind the agent's back.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

KEYS = ("loss", "acc", "val_loss", "lr")  # what every step logs


class NullLogger:
    """The harness alone: what building the dict, the clock reads and the pacing cost."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.spec = spec

    def setup(self) -> Callable[[dict[str, float], int], None]:
        return lambda d, step: None

    def settle(self) -> None:
        time.sleep(0.2)

    def finish(self) -> None:
        pass

    def extra(self) -> dict[str, Any]:
        return {}


class AquariumLogger(NullLogger):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        import aquarium.agent as agent

        self.agent = agent

    def setup(self) -> Callable[[dict[str, float], int], None]:
        spec = self.spec
        self.run = self.agent.init(
            "bench",
            name=spec["run_id"],
            run_id=spec["run_id"],
            redis_url=spec["redis_url"],
            data_dir=str(Path(spec["tmp"]) / "agent"),
        )
        return self.run.log  # the bound method, exactly what a user calls

    def settle(self) -> None:
        """Like a job that has been running a while: connected, and (with a collector) having
        seen its commit watermark, so finish() knows to wait for it."""
        started = time.monotonic()
        stats = self.run.stats
        while time.monotonic() - started < 5.0:
            if (
                stats.batches_sent >= 1
                and (not self.spec.get("collector") or stats.committed_seq >= 0)
                and time.monotonic() - started >= 0.2
            ):
                return
            time.sleep(0.01)

    def finish(self) -> None:
        self.report = self.run.finish()

    def extra(self) -> dict[str, Any]:
        r = self.report
        return {
            "report": {
                "points": r.points,
                "batches": r.batches,
                "committed_seq": r.committed_seq,
                "last_seq": r.last_seq,
                "spooled_files": len(r.spooled_files),
                "dropped_points": r.dropped_points,
                "timed_out": r.timed_out,
            },
            "stats": vars(self.run.stats),
        }


class TensorBoardLogger(NullLogger):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        from tensorboard.summary import Writer

        self.Writer = Writer

    def setup(self) -> Callable[[dict[str, float], int], None]:
        self.writer = self.Writer(str(Path(self.spec["tmp"]) / "tb"))
        add = self.writer.add_scalar

        def log(d: dict[str, float], step: int) -> None:
            for k, v in d.items():
                add(k, v, step)

        return log

    def finish(self) -> None:
        self.writer.close()


class WandbLogger(NullLogger):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        import wandb

        self.wandb = wandb

    def setup(self) -> Callable[[dict[str, float], int], None]:
        self.wandb.init(project="aquarium-bench", dir=self.spec["tmp"], mode="offline")
        wlog = self.wandb.log
        return lambda d, step: wlog(d, step=step)

    def finish(self) -> None:
        self.wandb.finish()
        self.wandb.teardown()


class MlflowLogger(NullLogger):
    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        uri = f"sqlite:///{Path(spec['tmp']) / 'mlflow.db'}"
        os.environ["MLFLOW_TRACKING_URI"] = uri
        os.environ["MLFLOW_REGISTRY_URI"] = uri  # skips the failing `import pyspark` per call
        os.environ.setdefault("MLFLOW_ASYNC_LOGGING_BUFFERING_SECONDS", "1")
        import mlflow

        self.mlflow = mlflow

    def setup(self) -> Callable[[dict[str, float], int], None]:
        self.mlflow.start_run()
        log_metrics = self.mlflow.log_metrics
        return lambda d, step: log_metrics(d, step=step, synchronous=False)

    def finish(self) -> None:
        self.mlflow.end_run()


class TrackioLogger(NullLogger):
    """Trackio in local mode: one SQLite file per project under TRACKIO_DIR, written by its
    background thread. The Hugging Face hub is switched off so nothing touches the network."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        os.environ["TRACKIO_DIR"] = str(Path(spec["tmp"]) / "trackio")  # read when trackio is imported
        os.environ.update(HF_HUB_OFFLINE="1", HF_HUB_DISABLE_TELEMETRY="1", GRADIO_ANALYTICS_ENABLED="False")
        import trackio

        self.trackio = trackio

    def setup(self) -> Callable[[dict[str, float], int], None]:
        self.trackio.init(project="aquarium-bench", auto_log_cpu=False, auto_log_gpu=False, embed=False)
        tlog = self.trackio.log
        return lambda d, step: tlog(d, step=step)

    def finish(self) -> None:
        self.trackio.finish()


LOGGERS: dict[str, type[NullLogger]] = {
    "null": NullLogger,
    "aquarium": AquariumLogger,
    "tensorboard": TensorBoardLogger,
    "wandb": WandbLogger,
    "mlflow": MlflowLogger,
    "trackio": TrackioLogger,
}
