"""The Aquarium collector: consumes batch streams into the store and serves what it holds."""

from .compat import ExperimentManager
from .consumer import Collector, CollectorSettings
from .store import Store

__all__ = ["Collector", "CollectorSettings", "ExperimentManager", "Store"]
