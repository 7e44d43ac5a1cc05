"""Artifact routes: agents upload bytes (link or PUT), everyone lists and downloads.

Uploads write the store (the upload's completion), so they need a process that owns the store's
writer: a collector serving the API (`aquarium collector --http-port`, `aquarium up`). The
standalone `aquarium api` opens its store read-only, so there every upload answers 503
``uploads_unavailable`` (a second writer would break the one-writer rule of the store); reads
work everywhere. Only collectors advertise their API in Redis, so agents never find a
read-only one by themselves.

An upload body is never held in memory: ``request.content`` is read in chunks straight into a
temporary file that hashes as it goes (``client_max_size`` bounds only ``request.read()``,
which no route here calls). The size limit is checked on ``Content-Length`` before a byte is
read.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Awaitable, Callable
from functools import partial, wraps
from typing import Any
from urllib.parse import quote

from aiohttp import HttpVersion11, web
from aiohttp.http_exceptions import HttpProcessingError

from aquarium.agent.errors import RunNotFoundError
from aquarium.agent.wire import UPLOAD_ID_PATTERN
from aquarium.collector.blobs import BlobError, BlobMissingError, UnsafeBlobError, check_sha256
from aquarium.collector.store import Store, UploadConflictError

from .errors import error_response
from .keys import BLOBS, SETTINGS, STORE
from .routes import int_param, json_safe

log = logging.getLogger("aquarium.collector.api.artifacts")

artifact_routes = web.RouteTableDef()

CHUNK = 1 << 20
SHA_HEADER = "X-Aquarium-Sha256"
CHANGED_HEADER = "X-Aquarium-Changed"


class _Refused(Exception):
    """A request refused before anything was written: its answer travels with it."""

    def __init__(self, response: web.Response) -> None:
        self.response = response


def _json(body: dict[str, Any], status: int = 200) -> web.Response:
    """JSON with ``<``, ``>`` and ``&`` escaped (names are data, never markup, wherever the text
    lands) and NaN or infinities in ``meta`` as null (JSON has neither)."""
    text = (
        json.dumps(json_safe(body), allow_nan=False)
        .replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
    )
    return web.Response(text=text, status=status, content_type="application/json")


def _writable_store(request: web.Request) -> Store:
    store = request.app[STORE]
    if store.read_only:
        raise _Refused(
            error_response(
                503,
                "uploads_unavailable",
                "this API serves a read-only store (`aquarium api`): upload to the API of a collector "
                "(`aquarium collector --http-port`, `aquarium up`), which agents find in Redis",
            )
        )
    return store


def _upload_id(request: web.Request) -> tuple[str, str]:
    run_id, upload = request.match_info["run_id"], request.match_info["upload"]
    if not UPLOAD_ID_PATTERN.fullmatch(upload):
        raise _Refused(error_response(400, "bad_request", f"upload id {upload[:40]!r} is not 32 lowercase hex digits"))
    return run_id, upload


def _too_large(request: web.Request, size: int) -> None:
    limit = request.app[SETTINGS].max_artifact_bytes
    if size > limit:
        raise _Refused(_too_large_response(size, limit))


def _too_large_response(size: int, limit: int) -> web.Response:
    return error_response(
        413,
        "too_large",
        f"an artifact of {size:,} bytes exceeds this API's limit of {limit:,} bytes "
        "(AQUARIUM_API_MAX_ARTIFACT_BYTES on the collector)",
        limit=limit,
    )


async def _expect_upload(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` (curl sends it for large bodies): an upload over the limit is
    refused before the client sends a byte of it; otherwise the client is told to go on."""
    size, limit = request.content_length, request.app[SETTINGS].max_artifact_bytes
    if size is not None and size > limit:
        response = _too_large_response(size, limit)
        response.force_close()
        return response
    expect = request.headers.get("Expect", "")
    if request.version == HttpVersion11:
        if expect.lower() != "100-continue":
            raise web.HTTPExpectationFailed(text=f"unknown Expect: {expect[:100]}")
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # as aiohttp's own handler: the answer's body has not begun
    return None


async def _completed(store: Store, run_id: str, upload: str, sha256: str) -> web.Response | None:
    """The answer to an upload that already completed (200, idempotent), else None.
    RunNotFoundError becomes 404 ``run_not_found``: the agent retries, its run may be on its way."""
    try:
        state, stored = await asyncio.to_thread(store.upload_state, run_id, upload)
    except RunNotFoundError:
        raise _Refused(_run_not_found(run_id)) from None
    if stored is None:
        return None
    if stored != sha256:
        return error_response(
            409, "upload_conflict", f"upload {upload} already completed with sha256 {stored}", sha256=stored
        )
    return _json({"state": state, "sha256": stored})


def _run_not_found(run_id: str) -> web.Response:
    return error_response(
        404, "run_not_found", f"no run {run_id!r} in the store (yet: its first batch may be on its way)", run=run_id
    )


async def _complete(store: Store, run_id: str, upload: str, sha256: str, size: int, changed: bool) -> str:
    try:
        return await asyncio.to_thread(store.complete_upload, run_id, upload, sha256, size, changed)
    except RunNotFoundError:
        raise _Refused(_run_not_found(run_id)) from None
    except UploadConflictError as e:
        raise _Refused(error_response(409, "upload_conflict", str(e))) from None


Handler = Callable[[web.Request], Awaitable[web.Response]]


def _refusals(handler: Handler, unread_body: bool = False) -> Handler:
    """Answer a _Refused with its response. With ``unread_body``, any answer but 201 closes the
    connection: a refused upload's body is never read (aiohttp would otherwise drain it)."""

    @wraps(handler)
    async def wrapped(request: web.Request) -> web.Response:
        try:
            response = await handler(request)
        except _Refused as refused:
            response = refused.response
        if unread_body and response.status != 201:
            response.force_close()
        return response

    return wrapped


@artifact_routes.post("/api/runs/{run_id}/artifacts/{upload}/link")
@_refusals
async def link(request: web.Request) -> web.Response:
    """``{"sha256", "size", "changed"}``: complete the upload with a blob already stored (200
    ``{"state"}``), or 404 ``blob_missing`` (send it with PUT)."""
    store = _writable_store(request)
    run_id, upload = _upload_id(request)
    try:
        body = await request.json()
        sha256 = check_sha256(body.get("sha256"))
        size, changed = body.get("size"), body.get("changed", False)
        if type(size) is not int or size < 0 or type(changed) is not bool:
            raise ValueError("size must be a whole number >= 0 and changed true or false")
    except (ValueError, AttributeError) as e:
        return error_response(400, "bad_request", f'expected JSON {{"sha256": hex, "size": n, "changed": bool}}: {e}')
    done = await _completed(store, run_id, upload, sha256)
    if done is not None:
        return done
    _too_large(request, size)
    if not await asyncio.to_thread(request.app[BLOBS].has, sha256, size):
        return error_response(404, "blob_missing", f"no blob {sha256} of {size:,} bytes here: PUT the content")
    return _json({"state": await _complete(store, run_id, upload, sha256, size, changed)})


@artifact_routes.put("/api/runs/{run_id}/artifacts/{upload}/content", expect_handler=_expect_upload)
@partial(_refusals, unread_body=True)
async def content(request: web.Request) -> web.Response:
    """The bytes, with ``Content-Length`` and ``X-Aquarium-Sha256``: streamed to a temporary
    file, verified, moved into the blob store; 201 ``{"state"}`` (200 when already completed)."""
    store = _writable_store(request)
    run_id, upload = _upload_id(request)
    size = request.content_length
    if size is None or "chunked" in request.headers.get("Transfer-Encoding", "").lower():
        return error_response(411, "length_required", "send Content-Length (chunked uploads are not accepted)")
    _too_large(request, size)
    try:
        sha256 = check_sha256(request.headers.get(SHA_HEADER))
    except ValueError as e:
        return error_response(400, "bad_request", f"{SHA_HEADER}: {e}")
    changed = request.headers.get(CHANGED_HEADER, "0").strip() == "1"
    done = await _completed(store, run_id, upload, sha256)
    if done is not None:
        return done  # the body is left unread (the connection is closed)
    writer = await asyncio.to_thread(request.app[BLOBS].writer, sha256, size)
    try:
        try:
            async for chunk in request.content.iter_chunked(CHUNK):
                await asyncio.to_thread(writer.write, chunk)
        except (ConnectionError, HttpProcessingError, asyncio.IncompleteReadError) as e:
            log.info("upload %s of run %s ended after %d of %d bytes (%s)", upload, run_id, writer.received, size, e)
        await asyncio.to_thread(writer.commit)  # TruncatedUploadError when the body ended early
    except BlobError as e:
        return error_response(400, e.code, str(e))
    except OSError as e:  # the disk is full or failing: the client retries later, or elsewhere
        log.error("upload %s of run %s could not be written: %s", upload, run_id, e)
        return error_response(
            503, "storage_unavailable", f"the collector cannot store the bytes now ({e.strerror or e})"
        )
    finally:
        writer.discard()  # nothing when committed: the temporary file is gone either way
    return _json({"state": await _complete(store, run_id, upload, sha256, size, changed)}, status=201)


@artifact_routes.get("/api/runs/{run_id}/artifacts")
async def list_artifacts(request: web.Request) -> web.Response:
    store, run_id = request.app[STORE], request.match_info["run_id"]
    return _json({"artifacts": await asyncio.to_thread(store.artifacts, run_id)})


@artifact_routes.get("/api/runs/{run_id}/artifacts/{name:.+}")
async def download(request: web.Request) -> web.StreamResponse:
    """The latest artifact of that name (``?rank=N``: of that rank): its bytes as its media type,
    an attachment (inline for raster images), ETag = its sha256."""
    store, run_id, name = request.app[STORE], request.match_info["run_id"], request.match_info["name"]
    rank = int_param(request, "rank", None, minimum=0)
    found = await asyncio.to_thread(store.artifact, run_id, name, rank)
    try:
        blob = await asyncio.to_thread(request.app[BLOBS].open, found["sha256"])
    except BlobMissingError:
        log.error("artifact %r of run %s: the store holds it, its blob %s is gone", name, run_id, found["sha256"])
        return error_response(404, "blob_missing", f"the bytes of {name!r} are missing from this store's blobs")
    except UnsafeBlobError as e:
        log.error("artifact %r of run %s not served: %s", name, run_id, e)
        return error_response(403, "unsafe_blob", "this artifact's blob is not a regular file of the blob store")
    try:
        response = web.StreamResponse(headers=_download_headers(name, found["media_type"], found["sha256"]))
        response.content_length = os.fstat(blob.fileno()).st_size
        await response.prepare(request)
        while chunk := await asyncio.to_thread(blob.read, CHUNK):
            await response.write(chunk)
        await response.write_eof()
    finally:
        blob.close()
    return response


INLINE_TYPES = ("image/png", "image/jpeg", "image/gif", "image/webp", "image/bmp", "image/avif")


def _download_headers(name: str, media_type: str, sha256: str) -> dict[str, str]:
    """Headers that keep a download data: an attachment unless a raster image (SVG is a page
    that can run script, so never inline), a sandbox, no sniffing, the filename quoted safely."""
    base = name.rsplit("/", 1)[-1]
    fallback = "".join(c if c.isascii() and (c.isalnum() or c in "._-") else "_" for c in base) or "artifact"
    inline = media_type.split(";")[0].strip().lower() in INLINE_TYPES
    return {
        "Content-Type": media_type,
        "Content-Disposition": f'{"inline" if inline else "attachment"}; filename="{fallback}"; '
        f"filename*=UTF-8''{quote(base, safe='')}",
        "ETag": f'"{sha256}"',
        "Content-Security-Policy": "sandbox",
        "Cache-Control": "private, max-age=0",
    }
