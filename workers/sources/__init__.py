"""Import sources, registered by name: ``get_source("tensorboard")``."""

from __future__ import annotations

from .base import ImportedRun, ImportedSeries, Source, SourceError, import_run_id
from .mlflow import MlflowSource
from .seed import SeedSource
from .tensorboard import TensorBoardSource
from .wandb import WandbSource

__all__ = [
    "SOURCES",
    "ImportedRun",
    "ImportedSeries",
    "Source",
    "SourceError",
    "get_source",
    "import_run_id",
    "register",
]

SOURCES: dict[str, Source] = {}


def register(source: Source) -> None:
    SOURCES[source.name] = source


def get_source(name: str) -> Source:
    try:
        return SOURCES[name]
    except KeyError:
        raise SourceError(f"no import source {name!r} (known: {', '.join(sorted(SOURCES))})") from None


for _source in (TensorBoardSource(), MlflowSource(), SeedSource(), WandbSource()):
    register(_source)
