"""Sending metric points to MLflow fast: ``log-batch`` calls of at most 1000 metrics, a few in
flight at once, and a per-series digest tag written once a series is known to be all there.

The MLflow client turns every ``Metric`` into a protobuf and then into JSON, which costs more than
the server's own work; against a REST tracking server the batches are posted here as JSON built
directly (``mlflow.utils.rest_utils.http_request``, so the client's credentials, TLS settings and
retries apply), other tracking URIs go through ``MlflowClient.log_batch``.

A digest tag ``aquarium.points.<metric>`` = ``<count>:<sha256 of steps, timestamps, values>`` is
logged only after every batch up to the one holding the series' last point has succeeded, so a
re-export skips an unchanged series without reading its history back, and an export killed
half-way leaves no tag for the series it did not finish (the retry reads those back and sends
only what is missing).
"""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np

METRICS_PER_CALL = 1000  # MLflow's limit for one log-batch call
TAGS_PER_CALL = 100
THREADS = 4
DIGEST_TAG = "aquarium.points."
MAX_TAG_KEY = 250
LOG_BATCH = "/api/2.0/mlflow/runs/log-batch"

Point = tuple[str, float, int, int]  # (JSON-quoted name, value, timestamp ms, step)


def digest_key(name: str) -> str:
    key = DIGEST_TAG + name
    return key if len(key) <= MAX_TAG_KEY else DIGEST_TAG + hashlib.sha256(name.encode()).hexdigest()[:32]


def digest(steps: np.ndarray, timestamps: np.ndarray, values: np.ndarray) -> str:
    h = hashlib.sha256()
    for array, dtype in ((steps, np.int64), (timestamps, np.int64), (values, np.float64)):
        h.update(np.ascontiguousarray(array, dtype=dtype).tobytes())
    return f"{len(steps)}:{h.hexdigest()[:32]}"


def _value_json(value: float) -> str:
    if value != value:
        return '"NaN"'
    if value in (float("inf"), float("-inf")):
        return '"Infinity"' if value > 0 else '"-Infinity"'
    return repr(value)


def _rest_poster(client: Any, ml_id: str) -> Callable[[Sequence[Point]], None] | None:
    """Posts one batch as hand-built JSON, or None when the tracking URI is not a REST server."""
    store = getattr(getattr(client, "_tracking_client", None), "store", None)
    get_host_creds = getattr(store, "get_host_creds", None)
    if get_host_creds is None:
        return None
    from mlflow.utils.rest_utils import http_request, verify_rest_response

    head = '{"run_id": ' + json.dumps(ml_id) + ', "metrics": ['

    def post(points: Sequence[Point]) -> None:
        body = head + ",".join(
            f'{{"key": {k}, "value": {_value_json(v)}, "timestamp": {t}, "step": {s}}}' for k, v, t, s in points
        )
        response = http_request(
            get_host_creds(), LOG_BATCH, "POST", data=body + "]}", extra_headers={"Content-Type": "application/json"}
        )
        verify_rest_response(response, LOG_BATCH)

    return post


class BatchSender:
    """Queues points, sends them in batches from a thread pool, writes digest tags in order."""

    def __init__(
        self, client: Any, ml_id: str, threads: int = THREADS, on_sent: Callable[[int], None] | None = None
    ) -> None:
        from mlflow.entities import Metric

        self.client, self.ml_id = client, ml_id
        rest = _rest_poster(client, ml_id)
        if rest is None:

            def through_client(points: Sequence[Point]) -> None:
                metrics = [Metric(json.loads(k), v, t, s) for k, v, t, s in points]
                client.log_batch(ml_id, metrics=metrics)

            self.post: Callable[[Sequence[Point]], None] = through_client
        else:
            self.post = rest
        self.pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="mlflow-log-batch")
        self.window = max(2, 2 * threads)
        self.pending: list[Point] = []
        self.pending_tags: list[tuple[str, str]] = []
        self.inflight: deque[tuple[Future[None], list[tuple[str, str]]]] = deque()
        self.sent = 0
        self.on_sent = on_sent or (lambda sent: None)

    def add(self, points: Sequence[Point], tag: tuple[str, str]) -> None:
        """Queue one series' points; ``tag`` is logged once they (and all before them) are in."""
        self.pending.extend(points)
        while len(self.pending) >= METRICS_PER_CALL:
            chunk, self.pending = self.pending[:METRICS_PER_CALL], self.pending[METRICS_PER_CALL:]
            self._submit(chunk, [] if self.pending else [tag])
            if not self.pending:
                return
        if self.pending:
            self.pending_tags.append(tag)
        elif self.inflight:
            self.inflight[-1][1].append(tag)
        else:
            self._tags([tag])

    def _submit(self, chunk: list[Point], tags: list[tuple[str, str]]) -> None:
        while len(self.inflight) >= self.window:
            self._settle(block=True)
        self.inflight.append((self.pool.submit(self.post, chunk), self.pending_tags + tags))
        self.pending_tags = []
        self.sent += len(chunk)
        self.on_sent(self.sent)
        self._settle(block=False)

    def _settle(self, block: bool) -> None:
        """Retire finished batches from the left (in order); their tags are now true."""
        ready: list[tuple[str, str]] = []
        while self.inflight and (block or self.inflight[0][0].done()):
            future, tags = self.inflight.popleft()
            future.result()  # a failed batch fails the export here
            ready += tags
            block = False
        if ready:
            self._tags(ready)

    def _tags(self, tags: list[tuple[str, str]]) -> None:
        from mlflow.entities import RunTag

        for i in range(0, len(tags), TAGS_PER_CALL):
            self.client.log_batch(self.ml_id, tags=[RunTag(k, v) for k, v in tags[i : i + TAGS_PER_CALL]])

    def close(self) -> None:
        """Send what is left and wait for every batch; raises the first failure."""
        if self.pending:
            chunk, self.pending = self.pending, []
            self._submit(chunk, [])
        while self.inflight:
            self._settle(block=True)

    def shutdown(self) -> None:
        """After ``close``, or after a failure: batches not started are dropped."""
        self.pool.shutdown(wait=True, cancel_futures=True)
