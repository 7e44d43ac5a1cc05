"""Bearer-token checks: with a token configured, every request must carry it.

Compared in constant time (``hmac.compare_digest``), so response timing does not leak how much
of a guess was right. 401 when the header is missing or not a bearer token, 403 when it is wrong.
"""

from __future__ import annotations

import hmac

from aiohttp import web
from aiohttp.typedefs import Middleware

from .errors import Handler, error_response


def token_middleware(token: str) -> Middleware:
    expected = token.encode()

    @web.middleware
    async def check_token(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given:
            response = error_response(401, "unauthorized", "this API needs 'Authorization: Bearer <token>'")
            response.headers["WWW-Authenticate"] = 'Bearer realm="aquarium"'
            return response
        if not hmac.compare_digest(given.strip().encode(), expected):
            return error_response(403, "forbidden", "wrong API token")
        return await handler(request)

    return check_token
