"""Security middleware: optional bearer-token auth, CORS only when asked, and safe response headers.

All pure ASGI (no BaseHTTPMiddleware), so none of it copies a body or adds a task.
- Auth: when `api_key` is set, every request but health, metrics and the page's own
  files needs `Authorization: Bearer <key>`; the comparison is constant-time and
  the key is never logged. The page (`/`, `/static/...`) still loads without it,
  but the API calls it makes need the key like any other client's.
- CORS: off unless `cors_origins` lists origins; then Starlette's CORSMiddleware.
- Headers: nosniff, no referrer, no framing and a same-origin CSP on every response
  that does not set its own (the page sets a stricter CSP; FastAPI's /docs pages
  load Swagger UI from a CDN, so they get no CSP).
"""

from __future__ import annotations

import hmac

from fastapi import FastAPI
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response
from service.settings import Settings

# Probes and scrapers carry no credentials; the page's HTML, scripts and samples are public.
OPEN_PREFIXES = ("/health/", "/v2/health/", "/static/")
OPEN_PATHS = frozenset({"/", "/metrics"})
DOCS_PATHS = ("/docs", "/redoc")

Header = tuple[bytes, bytes]
SECURITY_HEADERS: tuple[Header, ...] = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
)
CSP: Header = (b"content-security-policy", b"default-src 'self'; img-src 'self' data: blob:")


def is_open(path: str) -> bool:
    """True for the paths that never need the API key."""
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def bearer_token(scope: Scope) -> bytes | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.strip().partition(b" ")
            if scheme.lower() == b"bearer" and token.strip():
                return token.strip()
            return None
    return None


class ApiKeyMiddleware:
    """401 with `WWW-Authenticate: Bearer` unless the request carries the API key."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self.app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_open(scope["path"]):
            await self.app(scope, receive, send)
            return
        token = bearer_token(scope)
        # compare_digest: the time taken does not tell how much of a guess was right.
        if token is not None and hmac.compare_digest(token, self._key):
            await self.app(scope, receive, send)
            return
        if token is None:
            message = "this server needs an API key: send the header 'Authorization: Bearer <key>'"
            challenge = 'Bearer realm="alexnet"'
        else:
            message = "the API key is not valid"
            challenge = 'Bearer realm="alexnet", error="invalid_token"'
        response = error_response(
            Request(scope), 401, "unauthorized", message, {"WWW-Authenticate": challenge}
        )
        await response(scope, receive, send)


class SecurityHeadersMiddleware:
    """Adds the security headers to every response that does not set them itself."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        wanted = SECURITY_HEADERS
        if not scope["path"].startswith(DOCS_PATHS):
            wanted = (*SECURITY_HEADERS, CSP)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers.extend(pair for pair in wanted if pair[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def configured_key(settings: Settings) -> str:
    """The API key, or "" when auth is off (unset or empty)."""
    return settings.api_key.get_secret_value() if settings.api_key is not None else ""


def install_security(app: FastAPI, settings: Settings) -> None:
    """Add auth (when a key is set), CORS (when origins are set) and the security headers.

    Call before the metrics middleware is added, so that 401s are counted too.
    Starlette runs the last added outermost: headers, then CORS (which answers
    preflights, as they carry no credentials), then auth.
    """
    key = configured_key(settings)
    if key:
        app.add_middleware(ApiKeyMiddleware, api_key=key)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=[
                "Authorization",
                "Content-Type",
                "Content-Encoding",
                "X-Request-ID",
                "Inference-Header-Content-Length",
            ],
            expose_headers=[
                "X-Request-ID",
                "Retry-After",
                "Inference-Header-Content-Length",
                "X-Output-Shape",
            ],
        )
    app.add_middleware(SecurityHeadersMiddleware)
