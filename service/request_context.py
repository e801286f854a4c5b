"""Request ids: taken from X-Request-ID or generated, kept in a context variable for logs."""

from __future__ import annotations

import re
import uuid
from contextvars import ContextVar

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_request_id: ContextVar[str] = ContextVar("request_id", default="-")
# A client's id is echoed into logs and headers, so only a safe, short form is kept.
_SAFE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def current_request_id() -> str:
    """The id of the request being handled, or '-' outside one."""
    return _request_id.get()


class RequestIdMiddleware:
    """Pure ASGI (no BaseHTTPMiddleware): it adds no task or body copy to the hot path."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _SAFE_ID.match(given) else uuid.uuid4().hex
        # Not reset afterwards: each request runs in its own task (its own context), and
        # the outermost error handler, which runs after this returns, still needs the id.
        _request_id.set(request_id)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, send_with_id)
