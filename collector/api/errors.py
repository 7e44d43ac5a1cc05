"""Every failure the API answers is JSON ``{"error": reason, "code": ...}`` with the right status.

Aquarium's own errors map to statuses here, in one table; anything else is a 500 whose details
stay in the server's log (a traceback is not for the client).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from aquarium.agent.errors import AquariumError, RunNotFoundError

log = logging.getLogger("aquarium.collector.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class BadRequestError(AquariumError):
    """A query parameter the API cannot use (not a number, out of range, unknown value)."""

    def __init__(self, parameter: str, reason: str) -> None:
        self.parameter = parameter
        super().__init__(f"{parameter}: {reason}")


class TooLargeError(AquariumError):
    """The answer (or the request) would exceed the server's bounds."""


def error_response(status: int, code: str, message: str, **extra: Any) -> web.Response:
    body = {"error": message, "code": code, **extra}
    return web.Response(status=status, text=json.dumps(body), content_type="application/json")


def _status_of(error: AquariumError) -> tuple[int, str, dict[str, Any]]:
    from aquarium.collector.query import QueryError
    from aquarium.collector.store import ArtifactNotFoundError, ArtifactPendingError, KeyNotFoundError, WindowError

    if isinstance(error, QueryError):
        return 400, "bad_query", {"position": error.position, "reason": error.reason, "query": error.query[:8192]}
    if isinstance(error, (BadRequestError, WindowError)):
        return 400, "bad_request", {}
    if isinstance(error, RunNotFoundError):
        return 404, "unknown_run", {"run": error.run_id}
    if isinstance(error, KeyNotFoundError):
        return 404, "unknown_key", {"run": error.run_id, "key": error.key, "rank": error.rank}
    if isinstance(error, ArtifactNotFoundError):
        return 404, "unknown_artifact", {"run": error.run_id, "name": error.name, "rank": error.rank}
    if isinstance(error, ArtifactPendingError):
        return 404, "artifact_pending", {"run": error.run_id, "name": error.name, "rank": error.rank}
    if isinstance(error, TooLargeError):
        return 413, "too_large", {}
    return 400, "bad_request", {}


@web.middleware
async def json_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException as e:  # aiohttp's own (404 route, 405 method): the same JSON shape
        if e.status < 400:
            raise
        return error_response(e.status, e.reason.lower().replace(" ", "_"), e.text or e.reason)
    except ConnectionResetError:  # the client went away mid-response: nothing to answer
        raise
    except AquariumError as e:
        status, code, extra = _status_of(e)
        return error_response(status, code, str(e), **extra)
    except Exception:
        log.exception("%s %s failed", request.method, request.path_qs[:200])
        return error_response(500, "internal", "internal server error (see the server's log)")
