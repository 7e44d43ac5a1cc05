"""How the HTTP API listens and what it bounds: options, else AQUARIUM_* variables, else defaults."""

from __future__ import annotations

import ipaddress
import os
import socket
from dataclasses import dataclass

from aquarium.agent.errors import AquariumError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8054
TOKEN_VARIABLE = "AQUARIUM_API_TOKEN"
MAX_ARTIFACT_VARIABLE = "AQUARIUM_API_MAX_ARTIFACT_BYTES"
PUBLIC_URL_VARIABLE = "AQUARIUM_API_PUBLIC_URL"
DEFAULT_MAX_ARTIFACT_BYTES = 20 * 1024**3


class ApiConfigError(AquariumError):
    """Raised when the API is asked to listen somewhere unsafe (a public address without a token)."""


@dataclass(frozen=True)
class ApiSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    token: str | None = None  # when set, every request needs "Authorization: Bearer <token>"
    max_url_chars: int = 16_384  # request line: a longer one is refused before routing
    max_page: int = 10_000  # runs a page may hold
    max_raw_points: int = 2_000_000  # a series without `samples` larger than this is refused (413)
    max_samples: int = 100_000
    # live updates (`/api/runs/{id}/live`): the Redis the collectors publish on; None: answered 503
    redis_url: str | None = None
    prefix: str = "aquarium"
    keepalive: float = 15.0  # seconds between SSE comments on an idle stream
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES  # a larger upload is refused (413) before it is read
    # the address agents reach this API at (advertised in Redis); None: derived from host and port
    public_url: str | None = None

    @classmethod
    def from_env(cls, host: str | None = None, port: int | None = None, token: str | None = None) -> "ApiSettings":
        return cls(
            host=host or os.environ.get("AQUARIUM_API_HOST") or DEFAULT_HOST,
            port=DEFAULT_PORT if port is None else port,
            token=token or os.environ.get(TOKEN_VARIABLE) or None,
            max_artifact_bytes=_positive_int(MAX_ARTIFACT_VARIABLE, DEFAULT_MAX_ARTIFACT_BYTES),
            public_url=os.environ.get(PUBLIC_URL_VARIABLE) or None,
        )

    def check_bind(self) -> None:
        """Refuse a non-loopback address without a token: runs and params are not for everyone."""
        if not self.token and not is_loopback(self.host):
            raise ApiConfigError(
                f"refusing to serve the API on {self.host}, which is reachable from other machines, "
                f"without a token: set {TOKEN_VARIABLE} (clients then send 'Authorization: Bearer <token>'), "
                f"or listen on 127.0.0.1"
            )


def _positive_int(variable: str, default: int) -> int:
    raw = os.environ.get(variable, "").strip()
    if not raw:
        return default
    try:
        value = int(raw.replace("_", ""))
    except ValueError:
        raise ApiConfigError(f"{variable}={raw!r} is not a whole number of bytes") from None
    if value <= 0:
        raise ApiConfigError(f"{variable}={raw!r} must be positive")
    return value


def is_loopback(host: str) -> bool:
    """True when ``host`` (a name or an address) only ever means this machine."""
    if host in ("", "0.0.0.0", "::"):  # every interface
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(ipaddress.ip_address(info[4][0]).is_loopback for info in infos)
