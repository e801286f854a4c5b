"""The OpenAPI document tells the truth about errors: every status a route can answer, and its body.

FastAPI documents 200 and a 422 in its own `{"detail": [...]}` form, but this
service answers every error as JSON of its own (service/errors.py): `{"error":
{"code", "message", "request_id"}}` on /v1 and the rest, `{"error": "..."}` on the
inference protocols' routes (/v2, /v1/models).
Clients generated from the document, and schemathesis, rely on it saying so.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from service.errors import is_protocol_path
from service.security import is_open

V1_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "request_id"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "request_id": {"type": "string"},
            },
        }
    },
}
PROTOCOL_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {"type": "string"}},
}

STATUSES = {
    400: "bad input: a parameter, kernel or image is wrong",
    404: "no such model, version or layer",
    413: "too large: the body, a file, the file count or a size limit",
    415: "unsupported Content-Encoding (v2)",
    422: "a parameter has the wrong type or range",
    500: "inference failed, or an internal error (quote the request id)",
    503: "not ready, draining, or overloaded (then Retry-After says when to retry)",
    504: "no answer within the request deadline",
}
RETRY_AFTER = {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}}
CHALLENGE = {"WWW-Authenticate": {"description": "Bearer", "schema": {"type": "string"}}}


def _error(path: str, description: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    body = PROTOCOL_ERROR if is_protocol_path(path) else V1_ERROR
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": body}},
    }
    if headers:
        response["headers"] = headers
    return response


def add_error_responses(document: dict[str, Any], auth: bool) -> None:
    """Document the error answers of every operation (and the bearer scheme when auth is on)."""
    for path, operations in document.get("paths", {}).items():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})
            for status, description in STATUSES.items():
                existing = responses.get(str(status))
                # Keep a route's own documented answer (e.g. readiness's 503 body), but replace
                # FastAPI's 422, which describes a body this service never sends.
                if existing is None or status == 422:
                    headers = RETRY_AFTER if status == 503 else None
                    responses[str(status)] = _error(path, description, headers)
            if auth and not is_open(path):
                operation["security"] = [{"bearer": []}]
                responses["401"] = _error(path, "the API key is missing or wrong", CHALLENGE)
    if auth:
        schemes = document.setdefault("components", {}).setdefault("securitySchemes", {})
        schemes["bearer"] = {"type": "http", "scheme": "bearer"}


def document_errors(app: FastAPI, auth: bool) -> None:
    """Make `app.openapi()` (and /openapi.json, /docs) include the error answers."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            add_error_responses(generate(), auth)
        return app.openapi_schema or {}

    app.openapi = openapi  # type: ignore[method-assign]
