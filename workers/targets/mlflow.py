"""MLflow: one MLflow run per Aquarium run, found again by its ``aquarium.run_id`` tag.

- Experiment: the Aquarium experiment name, else ``aquarium``.
- Ranks: rank 0's series keep their key; rank k>0 are logged as ``<key>/rank<k>`` in the same run.
- Points: ``log-batch`` calls of 1000 metrics, a few in flight (``threads`` option, see
  ``mlflow_batches``); each series gets a digest tag ``aquarium.points.<metric>`` once it is all in.
- Idempotent: a re-export finds the run by tag; a series whose digest tag matches is skipped
  unread, any other has its history read back and only the (step, timestamp) points not already
  there are logged, so points are never doubled (a killed export's retry included). MLflow params
  are immutable: a param already there with another value is reported, not changed.
- MLflow's conventions, measured against mlflow 3.17's server: NaN is stored as NaN; +/-Inf are
  clamped to +/-1.7976931348623157e308; timestamps are integer milliseconds; names allow only
  alphanumerics, ``_ - . space : /`` up to 250 characters; params up to 6000 characters, tags 8000.
- Artifacts: each stored one uploaded with ``log_artifact`` at its relative name (``a/b.txt`` ->
  artifact path ``a``), models included (their framework in tag ``aquarium.framework.<name>``);
  a tag ``aquarium.artifact.<name>`` = sha256, set once the upload succeeded, so a re-export
  uploads only what is missing or changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import posixpath
import re
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..mlflow_env import quiet_mlflow
from ..progress import Progress
from ..report import Report
from .artifacts import fetched, plan
from .base import ExportError, Series, iter_series, rank_key, required, start_time, total_points
from .mlflow_batches import THREADS, BatchSender, Point, digest, digest_key

if TYPE_CHECKING:
    from aquarium.collector import Api

PARAMS_TAGS_PER_CALL = 100
MAX_NAME = 250
MAX_PARAM_VALUE = 6000
MAX_TAG_VALUE = 8000
RUN_ID_TAG = "aquarium.run_id"
STATUS_TAG = "aquarium.status"
RANKS_TAG = "aquarium.ranks"
ARTIFACT_TAG = "aquarium.artifact."
FRAMEWORK_TAG = "aquarium.framework."

STATUSES = {
    "completed": "FINISHED",
    "failed": "FAILED",
    "crashed": "FAILED",
    "killed": "KILLED",
    "terminated": "KILLED",
    "interrupted": "KILLED",
    "running": "RUNNING",
}
_BAD_NAME = re.compile(r"[^\w.\- :/]")


def mlflow_name(name: str) -> str:
    """The name MLflow accepts: bad characters become ``_``, no leading ``/``, 250 characters."""
    fixed = _BAD_NAME.sub("_", name).lstrip("/")[:MAX_NAME]
    return fixed or "_"


def artifact_tag(prefix: str, name: str) -> str:
    """``<prefix><name>``, or ``<prefix><hash of name>`` where MLflow would refuse that tag key."""
    key = prefix + name
    return key if mlflow_name(key) == key else prefix + hashlib.sha256(name.encode()).hexdigest()[:32]


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value) if isinstance(value, (list, dict, bool)) or value is None else str(value)


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None or math.isnan(seconds) else int(round(seconds * 1000))


class MlflowTarget:
    name = "mlflow"

    def export(self, api: Api, run_id: str, options: Mapping[str, Any], progress: Progress) -> Report:
        quiet_mlflow()
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        uri = str(required(options, "tracking_uri", self.name))
        run = api.run(run_id)  # an unknown run fails here, before MLflow is asked anything
        report = Report(self.name, run_id)
        client = MlflowClient(tracking_uri=uri)
        try:
            self._export(api, client, run, report, progress, int(options.get("threads") or THREADS))
        except MlflowException as e:
            raise ExportError(f"MLflow at {uri}: {e}") from e
        return report

    def _export(
        self, api: Api, client: Any, run: dict[str, Any], report: Report, progress: Progress, threads: int
    ) -> None:
        from mlflow.entities import Param, RunTag

        experiment_name = run.get("experiment") or "aquarium"
        experiment = client.get_experiment_by_name(experiment_name)
        if experiment is None:
            experiment_id = client.create_experiment(experiment_name)
        else:
            experiment_id = experiment.experiment_id
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment_id)
        quoted = str(run["id"]).replace("\\", "\\\\").replace("'", "\\'")
        found = client.search_runs([experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{quoted}'", max_results=1)
        started = start_time(run)
        if found:
            ml_run = found[0]
            existing_params: dict[str, str] = dict(ml_run.data.params)
        else:
            ml_run = client.create_run(
                experiment_id,
                start_time=_ms(started),
                tags={RUN_ID_TAG: run["id"]},
                run_name=run.get("name") or run["id"],
            )
            existing_params = {}
        ml_id = ml_run.info.run_id
        tracking = str(client.tracking_uri).rstrip("/")
        report.destination = f"{tracking}/#/experiments/{experiment_id}/runs/{ml_id}"

        params = []
        for key, value in sorted((run.get("params") or {}).items()):
            name, text = self._named(report, "params", key), _text(value)
            if len(text) > MAX_PARAM_VALUE:
                report.note("params", "truncated", f"values cut to MLflow's {MAX_PARAM_VALUE} characters", example=key)
                text = text[:MAX_PARAM_VALUE]
            if name in existing_params:
                if existing_params[name] != text:
                    report.note(
                        "params", "immutable", "MLflow params cannot change: the earlier value stays",
                        kept=False, example=f"{key}: {existing_params[name]!r} stays, {text!r} not logged",
                    )  # fmt: skip
                    continue
            else:
                params.append(Param(name, text))
            report.keep("params")
        tags = [RunTag(RUN_ID_TAG, run["id"]), RunTag(STATUS_TAG, str(run.get("status")))]
        ranks = run.get("ranks") or [0]
        if len(ranks) > 1:
            tags.append(RunTag(RANKS_TAG, json.dumps(ranks)))
        for key, value in sorted((run.get("tags") or {}).items()):
            name, text = self._named(report, "tags", key), _text(value)
            if len(text) > MAX_TAG_VALUE:
                report.note("tags", "truncated", f"values cut to MLflow's {MAX_TAG_VALUE} characters", example=key)
                text = text[:MAX_TAG_VALUE]
            tags.append(RunTag(name, text))
            report.keep("tags")
        for i in range(0, len(params), PARAMS_TAGS_PER_CALL):
            client.log_batch(ml_id, params=params[i : i + PARAMS_TAGS_PER_CALL])
        for i in range(0, len(tags), PARAMS_TAGS_PER_CALL):
            client.log_batch(ml_id, tags=tags[i : i + PARAMS_TAGS_PER_CALL])

        total, done = total_points(run), 0
        progress(0, total, "metrics")
        known = dict(ml_run.data.tags) if found else {}
        unsent = 0  # points of the series done so far that needed no sending

        def sent(count: int) -> None:
            progress(unsent + count, total, "metrics")

        sender = BatchSender(client, ml_id, threads, sent)
        try:
            for series in iter_series(api, run):
                name = self._named(report, "points", rank_key(series.key, series.rank), count=len(series.steps))
                if series.rank:
                    report.note("points", "rank", "rank k>0 logged as <key>/rank<k> in the same run", len(series.steps))
                points = self._points(client, ml_id, name, series, report, known, bool(found))
                done += len(series.steps)
                unsent += len(series.steps) - (len(points[0]) if points is not None else 0)
                if points is not None:
                    sender.add(*points)
                progress(unsent + sender.sent, total, "metrics")
            sender.close()
        finally:
            sender.shutdown()
        progress(done, total, "metrics")
        if done:
            report.note("times", "milliseconds", "point times rounded to MLflow's integer milliseconds", done)

        self._artifacts(api, client, run, ml_id, dict(ml_run.data.tags) if found else {}, report, progress)

        status = str(run.get("status") or "")
        ml_status = STATUSES.get(status, "FINISHED")
        if status not in STATUSES:
            report.note(
                "status", "mapped", f"no MLflow equivalent: FINISHED, the original in tag {STATUS_TAG}", example=status
            )
        else:
            report.note("status", "RunStatus", f"as MLflow's RunStatus, the original in tag {STATUS_TAG}",
                        example=f"{status} -> {ml_status}")  # fmt: skip
        report.keep("status")
        ended = _ms(run.get("ended_at"))
        if ml_status == "RUNNING":
            client.update_run(ml_id, status="RUNNING")
        else:
            with contextlib.redirect_stdout(io.StringIO()):  # MLflow prints the run's URL: it is in the report
                client.set_terminated(ml_id, status=ml_status, end_time=ended)
        report.keep("times", 1 + (ended is not None) if started is not None else int(ended is not None))

    @staticmethod
    def _artifacts(
        api: Api, client: Any, run: dict[str, Any], ml_id: str, known: Mapping[str, str], report: Report,
        progress: Progress,
    ) -> None:  # fmt: skip
        """Upload what MLflow does not hold yet (by the sha256 tag); the tag follows the upload."""
        planned = plan(api, run["id"], report)
        for i, artifact in enumerate(planned):
            tag = artifact_tag(ARTIFACT_TAG, artifact.name)
            if tag != ARTIFACT_TAG + artifact.name:
                report.note("artifacts", "hashed tag", f"names MLflow refuses as tag keys: {ARTIFACT_TAG}<hash of "
                            "name>", example=artifact.name)  # fmt: skip
            if known.get(tag) == artifact.sha256:
                report.note("artifacts", "unchanged", "already in MLflow with the same sha256: not uploaded again",
                            example=artifact.name)  # fmt: skip
            else:
                with fetched(api, run["id"], artifact) as path:
                    client.log_artifact(ml_id, str(path), artifact_path=posixpath.dirname(artifact.name) or None)
                client.set_tag(ml_id, tag, artifact.sha256)
            if artifact.kind == "model" and artifact.framework:
                framework_tag = artifact_tag(FRAMEWORK_TAG, artifact.name)
                if known.get(framework_tag) != artifact.framework:
                    client.set_tag(ml_id, framework_tag, artifact.framework)
                report.note("artifacts", "framework", f"a model's framework in tag {FRAMEWORK_TAG}<name>",
                            example=f"{artifact.name}: {artifact.framework}")  # fmt: skip
            report.keep("artifacts")
            progress(i + 1, len(planned), "artifacts")

    @staticmethod
    def _points(
        client: Any, ml_id: str, name: str, series: Series, report: Report, known: Mapping[str, str], found: bool
    ) -> tuple[list[Point], tuple[str, str]] | None:
        """The points of one series MLflow does not hold yet, and its digest tag; None when the
        digest tag says an earlier export sent exactly these points (nothing is read back)."""
        import numpy as np

        values = series.values.astype(np.float64)
        times = series.times.astype(np.float64)
        stamps = np.where(np.isnan(times), 0, np.round(times * 1000)).astype(np.int64)
        nan, inf = np.isnan(values), np.isinf(values)
        report.note("points", "NaN", "stored by MLflow as NaN", int(nan.sum()))
        if inf.any():
            first = int(np.flatnonzero(inf)[0])
            report.note("points", "Inf", "clamped by MLflow to +/-1.7976931348623157e308", int(inf.sum()),
                        example=f"{name}@{int(series.steps[first])}")  # fmt: skip
        report.keep("points", len(values))
        tag = (digest_key(name), digest(series.steps, stamps, values))
        if known.get(tag[0]) == tag[1]:
            return None
        quoted = json.dumps(name)
        rows = zip(series.steps.tolist(), values.tolist(), stamps.tolist())
        there: Counter[tuple[int, int]] = Counter()
        if found:  # a re-export whose digest differs or is missing (a killed export): what is there
            there = Counter((m.step, m.timestamp) for m in client.get_metric_history(ml_id, name))
        points = []
        for step, value, stamp in rows:
            if there[(step, stamp)] > 0:
                there[(step, stamp)] -= 1  # already exported: never logged twice
                continue
            points.append((quoted, value, stamp, step))
        return points, tag

    @staticmethod
    def _named(report: Report, field_name: str, name: str, count: int = 1) -> str:
        fixed = mlflow_name(name)
        if fixed != name:
            report.note(field_name, "renamed", "names MLflow rejects: bad characters to _, 250 characters", count,
                        example=f"{name} -> {fixed}")  # fmt: skip
        return fixed
