"""The OpenAPI 3.1 description of the API (``GET /api/openapi.json``)."""

from __future__ import annotations

from typing import Any

ERROR = {"$ref": "#/components/responses/Error"}


def _param(name: str, where: str, schema: dict[str, Any], description: str, required: bool = False) -> dict[str, Any]:
    return {
        "name": name,
        "in": where,
        "required": required or where == "path",
        "schema": schema,
        "description": description,
    }


RUN_ID = _param("run_id", "path", {"type": "string"}, "The run's id.")


def document() -> dict[str, Any]:
    runs_params = [
        _param(
            "filter",
            "query",
            {"type": "string", "maxLength": 4096},
            'Query language, e.g. params.lr > 1e-3 and "prod" in tags.',
        ),
        _param("sort", "query", {"type": "string"}, "A field, '-' first for descending; comma-separated for several."),
        _param("limit", "query", {"type": "integer", "minimum": 1, "maximum": 10000, "default": 100}, "Runs per page."),
        _param("offset", "query", {"type": "integer", "minimum": 0, "default": 0}, "Runs to skip."),
    ]
    series_params = [
        RUN_ID,
        _param("key", "path", {"type": "string"}, "The metric key (URL-encoded; may contain '/')."),
        _param("rank", "query", {"type": "integer", "minimum": 0}, "One rank's series (default 0)."),
        _param(
            "agg", "query", {"enum": ["mean", "min", "max", "all"]}, "Across ranks per step; 'all' adds min and max."
        ),
        _param(
            "samples",
            "query",
            {"type": "integer", "minimum": 1},
            "Downsample (MinMaxLTTB) to at most this many points.",
        ),
        _param("start", "query", {"type": "integer"}, "First step (inclusive)."),
        _param("end", "query", {"type": "integer"}, "Last step (inclusive)."),
        _param(
            "format",
            "query",
            {"enum": ["json", "columns"]},
            "columns: msgpack with little-endian arrays (exact NaN/Inf).",
        ),
    ]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Aquarium API",
            "version": "1",
            "description": "Runs and metric series of an Aquarium store.",
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "responses": {
                "Error": {
                    "description": "400 bad query or parameter, 401/403 token, 404 unknown run or key, 413 too large, "
                    "503 unavailable here.",
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
                }
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error", "code"],
                    "properties": {
                        "error": {"type": "string"},
                        "code": {"type": "string"},
                        "position": {"type": "integer", "description": "Where a filter is wrong (bad_query)."},
                    },
                },
                "Window": {
                    "type": "object",
                    "description": "Non-finite values are null in JSON.",
                    "properties": {
                        "run": {"type": "string"},
                        "key": {"type": "string"},
                        "rank": {"type": ["integer", "null"]},
                        "agg": {"type": ["string", "null"]},
                        "total": {"type": "integer", "description": "Points in the range before downsampling."},
                        "steps": {"type": "array", "items": {"type": "integer"}},
                        "values": {"type": "array", "items": {"type": ["number", "null"]}},
                        "times": {"type": "array", "items": {"type": "number"}},
                        "min": {"type": "array", "items": {"type": ["number", "null"]}},
                        "max": {"type": "array", "items": {"type": ["number", "null"]}},
                    },
                },
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/api/health": {"get": {"summary": "The store answers", "responses": {"200": {"description": "ok"}}}},
            "/api/runs": {
                "get": {
                    "summary": "Runs matching a filter, sorted and paged, with the total",
                    "parameters": runs_params,
                    "responses": {"200": {"description": "{runs, total, limit, offset}"}, "400": ERROR, "413": ERROR},
                }
            },
            "/api/runs/{run_id}": {
                "get": {
                    "summary": "One run: params, tags, status history, ranks, incarnations (gaps), metric summaries",
                    "parameters": [RUN_ID],
                    "responses": {"200": {"description": "the run"}, "404": ERROR},
                }
            },
            "/api/runs/{run_id}/keys": {
                "get": {
                    "summary": "The run's metric keys",
                    "parameters": [RUN_ID],
                    "responses": {"200": {"description": "{run, keys}"}, "404": ERROR},
                }
            },
            "/api/runs/{run_id}/series/{key}": {
                "get": {
                    "summary": "A metric's points: one rank or an aggregate, a step range, downsampled",
                    "parameters": series_params,
                    "responses": {
                        "200": {
                            "description": "the window",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Window"}},
                                "application/x-aquarium-columns": {},
                            },
                        },
                        "400": ERROR,
                        "404": ERROR,
                        "413": ERROR,
                    },
                }
            },
            "/api/runs/{run_id}/live": {
                "get": {
                    "summary": "Server-Sent Events: what is stored, then each commit (event points, event status)",
                    "parameters": [RUN_ID, _param("since_step", "query", {"type": "integer"}, "Only steps after it.")],
                    "responses": {
                        "200": {"description": "the stream", "content": {"text/event-stream": {}}},
                        "404": ERROR,
                        "503": ERROR,
                    },
                }
            },
            **artifact_paths(),
            "/metrics": {
                "get": {
                    "summary": "The collector's counters (Prometheus text format)",
                    "responses": {"200": {"description": "text"}},
                }
            },
        },
    }


UPLOAD = _param("upload", "path", {"type": "string", "pattern": "^[0-9a-f]{32}$"}, "The record's upload id.")
SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
STATE = {
    "description": "The upload is complete",
    "content": {
        "application/json": {"schema": {"type": "object", "properties": {"state": {"enum": ["stored", "changed"]}}}}
    },
}


def artifact_paths() -> dict[str, Any]:
    """Uploads (agents; only on a collector's API, else 503) and reads; see docs/artifacts.md."""
    artifact = {
        "type": "object",
        "properties": {
            "upload": {"type": "string"},
            "name": {"type": "string"},
            "kind": {"enum": ["file", "model", "figure"]},
            "rank": {"type": "integer"},
            "size": {"type": "integer"},
            "sha256": {"oneOf": [SHA256, {"type": "null"}]},
            "step": {"type": ["integer", "null"]},
            "framework": {"type": ["string", "null"]},
            "media_type": {"type": "string"},
            "meta": {"type": "object"},
            "logged_at": {"type": "number"},
            "state": {"enum": ["pending", "stored", "changed"]},
        },
    }
    return {
        "/api/runs/{run_id}/artifacts/{upload}/link": {
            "post": {
                "summary": "Complete an upload with a blob already stored (no bytes sent); 404 blob_missing: PUT it",
                "parameters": [RUN_ID, UPLOAD],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                "type": "object",
                                "required": ["sha256", "size"],
                                "properties": {
                                    "sha256": SHA256,
                                    "size": {"type": "integer", "minimum": 0},
                                    "changed": {"type": "boolean"},
                                },
                            }
                        }
                    },
                },
                "responses": {"200": STATE, "400": ERROR, "404": ERROR, "409": ERROR, "413": ERROR, "503": ERROR},
            }
        },
        "/api/runs/{run_id}/artifacts/{upload}/content": {
            "put": {
                "summary": "The artifact's bytes, streamed and verified against X-Aquarium-Sha256",
                "parameters": [
                    RUN_ID,
                    UPLOAD,
                    _param("X-Aquarium-Sha256", "header", SHA256, "The body's sha256.", required=True),
                    _param("X-Aquarium-Changed", "header", {"enum": ["0", "1"]}, "1: the file changed since the call."),
                    _param("Content-Length", "header", {"type": "integer"}, "Required (no chunked bodies).", True),
                ],
                "requestBody": {"required": True, "content": {"application/octet-stream": {}}},
                "responses": {
                    "201": STATE,
                    "200": {"description": "Already completed with these bytes (idempotent)"},
                    "400": ERROR,
                    "404": ERROR,
                    "409": ERROR,
                    "411": ERROR,
                    "413": ERROR,
                    "503": ERROR,
                },
            }
        },
        "/api/runs/{run_id}/artifacts": {
            "get": {
                "summary": "The run's artifacts in the order logged, each pending, stored or changed",
                "parameters": [RUN_ID],
                "responses": {
                    "200": {
                        "description": "{artifacts}",
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "properties": {"artifacts": {"type": "array", "items": artifact}},
                                }
                            }
                        },
                    },
                    "404": ERROR,
                },
            }
        },
        "/api/runs/{run_id}/artifacts/{name}": {
            "get": {
                "summary": "The latest artifact of that name: its bytes, as its media type, ETag = sha256",
                "parameters": [
                    RUN_ID,
                    _param("name", "path", {"type": "string"}, "The artifact's name (may contain '/')."),
                    _param("rank", "query", {"type": "integer", "minimum": 0}, "That rank's artifact."),
                ],
                "responses": {
                    "200": {"description": "the bytes", "content": {"*/*": {}}},
                    "404": ERROR,
                    "403": ERROR,
                },
            }
        },
    }
