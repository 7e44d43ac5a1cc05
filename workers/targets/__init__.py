"""Export targets, registered by name: ``get_target("mlflow")``."""

from __future__ import annotations

from .base import ExportError, Series, Target
from .files import CsvTarget, JsonTarget
from .mlflow import MlflowTarget
from .seed import SeedTarget
from .tensorboard import TensorBoardTarget
from .wandb import WandbTarget

__all__ = ["TARGETS", "ExportError", "Series", "Target", "get_target", "register"]

TARGETS: dict[str, Target] = {}


def register(target: Target) -> None:
    TARGETS[target.name] = target


def get_target(name: str) -> Target:
    try:
        return TARGETS[name]
    except KeyError:
        raise ExportError(f"no export target {name!r} (known: {', '.join(sorted(TARGETS))})", permanent=True) from None


for _target in (MlflowTarget(), TensorBoardTarget(), WandbTarget(), JsonTarget(), CsvTarget()):
    register(_target)
register(SeedTarget())
