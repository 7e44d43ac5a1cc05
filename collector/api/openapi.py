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
                    "description": "400 bad query or parameter, 401/403 token, 404 unknown run or key, 413 too large.",
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
            "/metrics": {
                "get": {
                    "summary": "The collector's counters (Prometheus text format)",
                    "responses": {"200": {"description": "text"}},
                }
            },
        },
    }
