"""A small HTTP server answering the artifact upload contract, with faults a test scripts.

For the uploader's own behaviour (retries, refusals, headers, streaming); the end-to-end tests
use the real collector. Bodies are hashed as they arrive, never held whole.
"""

from __future__ import annotations

import hashlib
import json
import re
import ssl
import threading
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ROUTE = re.compile(r"^/api/runs/([^/]+)/artifacts/([0-9a-f]{32})/(link|content)$")


@dataclass
class Seen:
    method: str
    route: str  # "link" or "content"
    run: str
    upload: str
    headers: dict[str, str]
    body: dict[str, Any] = field(default_factory=dict)


class FakeArtifactApi:
    """``faults[route]``: (status, code) answers given before the normal behaviour."""

    def __init__(
        self, token: str = "", max_bytes: int = 1 << 40, port: int = 0, tls: tuple[str, str] | None = None
    ) -> None:
        self.token = token
        self.max_bytes = max_bytes
        self.faults: dict[str, deque[tuple[int, str]]] = {"link": deque(), "content": deque()}
        self.blobs: dict[str, bytes] = {}
        self.completed: dict[tuple[str, str], tuple[str, int, bool]] = {}
        self.seen: list[Seen] = []
        self.changed = threading.Condition()
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self.scheme = "http"
        if tls is not None:  # (certificate, key) files
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> "FakeArtifactApi":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def requests(self, route: str, upload: str | None = None) -> list[Seen]:
        """The requests seen on ``route`` (for one ``upload`` id if given)."""
        return [s for s in self.seen if s.route == route and upload in (None, s.upload)]

    def _note(self, seen: Seen) -> None:
        with self.changed:
            self.seen.append(seen)
            self.changed.notify_all()

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> bool:
        with self.changed:
            return self.changed.wait_for(predicate, timeout)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        api = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _answer(self, status: int, body: dict[str, Any], close: bool = False) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

            def _route(self, method: str) -> tuple[str, str, str] | None:
                match = ROUTE.match(self.path)
                if match is None or (method, match.group(3)) not in (("POST", "link"), ("PUT", "content")):
                    self._answer(404, {"code": "not_found", "error": self.path}, close=True)
                    return None
                run, upload, route = match.groups()
                if api.token and self.headers.get("Authorization") != f"Bearer {api.token}":
                    self._answer(401, {"code": "unauthorized", "error": "bad token"}, close=True)
                    api._note(Seen(method, route, run, upload, dict(self.headers)))
                    return None
                return run, upload, route

            def do_POST(self) -> None:
                found = self._route("POST")
                if found is None:
                    return
                run, upload, route = found
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                api._note(Seen("POST", route, run, upload, dict(self.headers), body))
                if api.faults["link"]:
                    status, code = api.faults["link"].popleft()
                    self._answer(status, {"code": code, "error": f"scripted {status}"})
                    return
                done = api.completed.get((run, upload))
                if done is not None:
                    self._answer(200, {"state": "changed" if done[2] else "stored"})
                    return
                if body["sha256"] not in api.blobs:
                    self._answer(404, {"code": "blob_missing", "error": "PUT the content"})
                    return
                api.completed[(run, upload)] = (body["sha256"], body["size"], body["changed"])
                self._answer(200, {"state": "changed" if body["changed"] else "stored"})

            def do_PUT(self) -> None:
                found = self._route("PUT")
                if found is None:
                    return
                run, upload, route = found
                api._note(Seen("PUT", route, run, upload, dict(self.headers)))
                if api.faults["content"]:
                    status, code = api.faults["content"].popleft()
                    self._answer(status, {"code": code, "error": f"scripted {status}"}, close=True)
                    return
                if "Content-Length" not in self.headers:
                    self._answer(411, {"code": "length_required", "error": "no Content-Length"}, close=True)
                    return
                size = int(self.headers["Content-Length"])
                if size > api.max_bytes:
                    self._answer(
                        413,
                        {"code": "too_large", "error": f"limit {api.max_bytes}", "limit": api.max_bytes},
                        close=True,
                    )
                    return
                digest, parts, left = hashlib.sha256(), [], size
                while left:
                    chunk = self.rfile.read(min(left, 1 << 20))
                    if not chunk:
                        break
                    digest.update(chunk)
                    parts.append(chunk)
                    left -= len(chunk)
                if left:
                    self.close_connection = True
                    return  # truncated: nothing recorded (the client is gone)
                sha = digest.hexdigest()
                if sha != self.headers.get("X-Aquarium-Sha256"):
                    self._answer(400, {"code": "sha256_mismatch", "error": f"body is {sha}"})
                    return
                changed = self.headers.get("X-Aquarium-Changed") == "1"
                api.blobs[sha] = b"".join(parts)
                api.completed[(run, upload)] = (sha, size, changed)
                self._answer(201, {"state": "changed" if changed else "stored"})
                with api.changed:
                    api.changed.notify_all()

        return Handler
