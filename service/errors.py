"""Domain exceptions and the one place that maps every error to its JSON form.

The inference protocols' routes (PROTOCOL_PREFIXES: the Open Inference Protocol at
/v2, KServe's v1 data plane at /v1/models) answer their own `{"error": "..."}`, the
only form tritonclient and KServe's SDK read; /v1 and the rest answer
`{"error": {"code", "message", "request_id"}}`.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.numerics.errors import InvalidArgument
from service.request_context import current_request_id

log = logging.getLogger("service.errors")


class ServiceError(Exception):
    """An error the client can act on; its message is safe to show."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadInput(ServiceError):
    """The request is malformed: a bad parameter, kernel or image."""


class NotFound(ServiceError):
    status, code = 404, "not_found"


class TooLarge(ServiceError):
    status, code = 413, "too_large"


class OverLimit(ServiceError):
    """Well-formed, but asks for more work than a configured limit allows."""

    status, code = 422, "over_limit"


class NotReady(ServiceError):
    status, code = 503, "not_ready"


class Overloaded(ServiceError):
    status, code = 503, "overloaded"

    def __init__(self, message: str, retry_after_s: int = 1) -> None:
        super().__init__(message, headers={"Retry-After": str(retry_after_s)})


class DeadlineExceeded(ServiceError):
    status, code = 504, "deadline_exceeded"


class InferenceFailed(ServiceError):
    status, code = 500, "inference_failed"


class NotSupported(ServiceError):
    """A protocol operation this server does not offer (yet); the message says why."""

    status, code = 501, "not_implemented"


HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
# Path prefixes of the inference protocols, whose errors are `{"error": "<message>"}`.
PROTOCOL_PREFIXES = ("/v2", "/v1/models")


def is_protocol_path(path: str) -> bool:
    """True for the paths of an inference protocol (`/v1/model` is not: it is the service's)."""
    return any(path == prefix or path.startswith(prefix + "/") for prefix in PROTOCOL_PREFIXES)


def error_response(
    request: Request, status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    """The JSON error in the form the route's protocol expects."""
    request_id = current_request_id()
    if is_protocol_path(request.url.path):
        body: dict[str, object] = {"error": message}
    else:
        body = {"error": {"code": code, "message": message, "request_id": request_id}}
    return JSONResponse(body, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else error.get("msg", ""))
    return "; ".join(parts) or "invalid request"


def install_error_handlers(app: FastAPI) -> None:
    """Map domain errors, validation errors, HTTP errors and crashes to JSON."""

    @app.exception_handler(ServiceError)
    async def _service_error(request: Request, exc: ServiceError) -> JSONResponse:
        if exc.status == 500:  # 503/504 are load, not faults: metrics count them, logs don't
            log.error("request failed: %s", exc.message)
        return error_response(request, exc.status, exc.code, exc.message, exc.headers)

    @app.exception_handler(InvalidArgument)
    async def _invalid_argument(request: Request, exc: InvalidArgument) -> JSONResponse:
        return error_response(request, 400, "bad_request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(request, 422, "invalid_request", _validation_message(exc))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = HTTP_CODES.get(exc.status_code, "http_error")
        return error_response(
            request, exc.status_code, code, str(exc.detail), dict(exc.headers or {})
        )

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            request,
            500,
            "internal_error",
            f"internal error; quote request id {current_request_id()}",
        )
