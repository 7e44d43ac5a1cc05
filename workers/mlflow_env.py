"""The environment MLflow's client runs in here.

MLflow's telemetry sets and unsets ``_MLFLOW_TELEMETRY_SESSION_ID`` in ``os.environ`` from its
own thread, while an export's threads read the environment (requests' proxy lookup iterates
``os.environ``): an export failed with ``KeyError: '_MLFLOW_TELEMETRY_SESSION_ID'``. An export
or import worker talks to the tracking server it was given and to nothing else, so telemetry is
off unless the environment already says otherwise.
"""

from __future__ import annotations

import os


def quiet_mlflow() -> None:
    """Call before the first ``import mlflow`` of the process."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
