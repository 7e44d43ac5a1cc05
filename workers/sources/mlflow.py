"""MLflow runs, read through ``MlflowClient`` from a tracking URI (a server, or a local store).

- Every active experiment's runs (``--experiment NAME`` for one); the run id comes from the
  MLflow run id, so the same MLflow run always maps to the same Aquarium run.
- Name, experiment, params (MLflow keeps them as strings: kept as strings), tags (``mlflow.*``
  system tags included), status (FINISHED -> completed, FAILED -> failed, KILLED -> killed,
  RUNNING/SCHEDULED -> running), start and end time, and every metric's full history with its
  steps and timestamps (integer milliseconds in MLflow, seconds in Aquarium).
- Artifacts are reported as not imported.
"""

from __future__ import annotations

import urllib.request
from collections.abc import Mapping
from typing import Any

from ..mlflow_env import quiet_mlflow
from ..progress import Progress
from ..report import Report, Tally
from .base import ImportedRun, ImportedSeries, SourceError

STATUSES = {"FINISHED": "completed", "FAILED": "failed", "KILLED": "killed", "RUNNING": "running",
            "SCHEDULED": "running"}  # fmt: skip
PAGE = 1000


PROBE_TIMEOUT = 5.0


def _client(uri: str) -> Any:
    """A client, after one quick request to an HTTP server: MLflow's own client retries an
    unreachable server with backoff for minutes before it gives up."""
    quiet_mlflow()
    from mlflow import MlflowClient

    if uri.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(f"{uri.rstrip('/')}/health", timeout=PROBE_TIMEOUT):
                pass
        except (OSError, ValueError) as e:  # URLError and HTTPError are OSErrors
            raise SourceError(f"MLflow at {uri}: unreachable ({e})", permanent=False) from e
    return MlflowClient(tracking_uri=uri)


def _failed(uri: str, e: Exception) -> SourceError:
    return SourceError(f"MLflow at {uri}: {type(e).__name__}: {str(e)[:500]}", permanent=False)


class MlflowSource:
    name = "mlflow"

    def list_runs(self, location: str, options: Mapping[str, Any]) -> list[str]:
        from mlflow.entities import ViewType
        from mlflow.exceptions import MlflowException

        client = _client(location)
        try:
            wanted = options.get("experiment")
            if wanted:
                found = client.get_experiment_by_name(str(wanted))
                if found is None:
                    raise SourceError(f"MLflow at {location} has no experiment {wanted!r}")
                experiments = [found]
            else:
                experiments = client.search_experiments(view_type=ViewType.ACTIVE_ONLY)
            found_runs: list[tuple[int, str]] = []
            for experiment in experiments:
                token = None
                while True:
                    page = client.search_runs([experiment.experiment_id], max_results=PAGE, page_token=token)
                    found_runs += [(r.info.start_time or 0, r.info.run_id) for r in page]
                    token = page.token
                    if not token:
                        break
        except MlflowException as e:
            raise _failed(location, e) from e
        if not found_runs:
            raise SourceError(f"MLflow at {location} holds no runs")
        return [run_id for _, run_id in sorted(found_runs)]  # by start time, then id: the same order every time

    def read_run(
        self, location: str, ref: str, options: Mapping[str, Any], report: Report, progress: Progress
    ) -> ImportedRun:
        from mlflow.exceptions import MlflowException

        client = _client(location)
        try:
            ml_run = client.get_run(ref)
            experiment = client.get_experiment(ml_run.info.experiment_id)
            run = ImportedRun(self.name, ml_run.info.run_id, f"{location} run {ref}", name=ml_run.info.run_name,
                              experiment=experiment.name if experiment else None)  # fmt: skip
            run.params = dict(sorted(ml_run.data.params.items()))
            if run.params:
                report.note("params", "strings", "MLflow params are strings: kept as strings", len(run.params))
            run.tags = dict(sorted(ml_run.data.tags.items()))
            status = str(ml_run.info.status)
            run.status = STATUSES.get(status, status.lower())
            report.note("status", "mapped", "MLflow's RunStatus as Aquarium's status", example=f"{status} -> "
                        f"{run.status}")  # fmt: skip
            run.started_at = ml_run.info.start_time / 1000 if ml_run.info.start_time else None
            run.ended_at = ml_run.info.end_time / 1000 if ml_run.info.end_time else None
            keys = sorted(ml_run.data.metrics)
            for i, key in enumerate(keys):
                history = client.get_metric_history(ref, key)
                history.sort(key=lambda m: (m.timestamp, m.step))  # logging order; the sort is stable
                run.series.append(ImportedSeries(key, [int(m.step) for m in history], [float(m.value) for m in
                                                 history], [m.timestamp / 1000 for m in history]))  # fmt: skip
                progress(i + 1, len(keys), "metrics")
            artifacts = client.list_artifacts(ref)
        except MlflowException as e:
            if getattr(e, "error_code", "") in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise SourceError(f"MLflow at {location} has no run {ref!r}") from e
            raise _failed(location, e) from e
        except OSError as e:
            raise _failed(location, e) from e
        if artifacts:
            report.fields.setdefault("artifacts", Tally())
            report.note("artifacts", "not imported", "MLflow artifacts are not imported yet", len(artifacts),
                        kept=False, example=", ".join(a.path for a in artifacts[:5]))  # fmt: skip
        return run
