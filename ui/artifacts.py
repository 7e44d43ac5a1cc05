"""Artifact downloads from the dashboard's own server: ``/artifacts/{run}/{name}[?rank=N]``.

The dashboard may read a data dir (no HTTP API anywhere) or an API on another origin, so the
page links here, and this handler reads through the dashboard's ``Api`` (``open_artifact``),
piece by piece, never whole. The answer keeps a download data: an attachment unless a raster
image (SVG and HTML can run script), no sniffing, a sandbox policy. With a token configured the
handler asks for the same login as the dashboard (Bokeh's auth hooks, Panel's basic auth).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any
from urllib.parse import quote

from bokeh.server.views.auth_request_handler import AuthRequestHandler

from aquarium.agent.artifact_names import artifact_name_problem
from aquarium.agent.errors import RunNotFoundError
from aquarium.collector import Api
from aquarium.collector.store import ArtifactNotFoundError, ArtifactPendingError

__all__ = ["ROUTE", "ArtifactHandler", "artifact_url", "is_inline", "route"]

log = logging.getLogger("aquarium.ui.artifacts")

ROUTE = r"/artifacts/([^/]+)/(.+)"
CHUNK = 1 << 20
INLINE_TYPES = frozenset(("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif"))


def is_inline(media_type: str) -> bool:
    """Whether a browser may show it in the page: raster images only."""
    return media_type.split(";")[0].strip().lower() in INLINE_TYPES


def artifact_url(run_id: str, name: str, rank: int | None = None) -> str:
    """The dashboard-relative download link (every part quoted: names are data)."""
    query = f"?rank={int(rank)}" if rank is not None else ""
    return f"./artifacts/{quote(run_id, safe='')}/{quote(name, safe='/')}{query}"


def route(api: Api) -> tuple[str, type[ArtifactHandler], dict[str, Any]]:
    """The ``extra_patterns`` entry for ``pn.serve``."""
    return (ROUTE, ArtifactHandler, {"api": api})


class ArtifactHandler(AuthRequestHandler):
    """GET one artifact's bytes through the dashboard's ``Api``."""

    def initialize(self, api: Api) -> None:
        self.api = api

    async def get(self, run_id: str, name: str) -> None:
        if not self.current_user:  # a token is configured and this browser has not logged in
            self._refuse(401, "log in to the dashboard first")
            return
        problem = artifact_name_problem(name)
        if problem is not None:
            self._refuse(400, f"not an artifact name: {problem}")
            return
        rank_text = self.get_query_argument("rank", None)
        if rank_text is not None and not (rank_text.isascii() and rank_text.isdigit()):
            self._refuse(400, "rank must be a whole number")
            return
        rank = int(rank_text) if rank_text is not None else None
        try:
            opened = await asyncio.to_thread(self.api.open_artifact, run_id, name, rank)
        except (RunNotFoundError, ArtifactNotFoundError):
            self._refuse(404, "no such artifact")
            return
        except ArtifactPendingError:
            self._refuse(404, "this artifact's bytes have not been uploaded yet")
            return
        try:
            for header, value in download_headers(name, opened.media_type, opened.sha256).items():
                self.set_header(header, value)
            self.set_header("Content-Length", str(opened.size))
            while chunk := await asyncio.to_thread(opened.read, CHUNK):
                self.write(chunk)
                await self.flush()
        finally:
            await asyncio.to_thread(opened.close)

    def _refuse(self, status: int, reason: str) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.set_header("X-Content-Type-Options", "nosniff")
        self.finish(reason + "\n")


def download_headers(name: str, media_type: str, sha256: str) -> dict[str, str]:
    base = name.rsplit("/", 1)[-1]
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in base) or "artifact"
    disposition = "inline" if is_inline(media_type) else "attachment"
    return {
        "Content-Type": media_type,
        "Content-Disposition": f"{disposition}; filename=\"{fallback}\"; filename*=UTF-8''{quote(base, safe='')}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "sandbox",
        "ETag": f'"{sha256}"',
        "Cache-Control": "private, max-age=0",
    }
