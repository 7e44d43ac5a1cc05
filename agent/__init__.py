"""The Aquarium agent: import it in training scripts (any rank of a job).

    import aquarium.agent as aq
    run = aq.init(experiment="resnet", name="lr-1e-3", config={"lr": 1e-3})
    run.log({"loss": loss}, step=step)     # appends to memory; a background thread ships
    run.log_model("model.pt", framework="pytorch")  # uploaded in the background
    run.finish()

Imports only the standard library, ``redis`` and ``msgpack``.
"""

from .compat import ExperimentTracker
from .errors import (
    AquariumError,
    ConfigError,
    InvalidNameError,
    InvalidValueError,
    NoActiveRunError,
    RunFinishedError,
    RunNotFoundError,
    SpoolError,
    WireFormatError,
)
from .run import (
    Run,
    current_run,
    finish,
    init,
    log,
    log_artifact,
    log_figure,
    log_model,
    log_params,
    set_status,
    set_tags,
)
from .settings import AgentSettings
from .shipper import FinishReport

log_hyperparameters = log_params

__all__ = [
    "AgentSettings",
    "AquariumError",
    "ConfigError",
    "ExperimentTracker",
    "FinishReport",
    "InvalidNameError",
    "InvalidValueError",
    "NoActiveRunError",
    "Run",
    "RunFinishedError",
    "RunNotFoundError",
    "SpoolError",
    "WireFormatError",
    "current_run",
    "finish",
    "init",
    "log",
    "log_artifact",
    "log_figure",
    "log_model",
    "log_hyperparameters",
    "log_params",
    "set_status",
    "set_tags",
]
