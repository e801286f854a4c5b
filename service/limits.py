"""Request-level limits as pure ASGI middleware: body size before reading, work of departed callers.

`BodyLimitMiddleware` answers 413 from the Content-Length header alone, before a
byte of the body is read, when it is larger than any request the routes accept
(max_files uploads of max_upload_bytes plus form overhead, or max_v2_body_bytes
on the inference protocols' routes, /v2 and /v1/models); a body without
Content-Length (chunked) is counted as it arrives.

`CancelOnDisconnectMiddleware` cancels a handler whose client has gone. Starlette
does not: a disconnected caller's images would wait in the batch queue and cost
inference. A client gone mid-upload ends the handler at once (no half-body error,
no traceback). Once the whole body is read and the handler has run WATCH_AFTER_S,
one task waits for the server's next event, which is `http.disconnect`; if that
comes before the response is complete, the handler is cancelled, and its queued
images with it (the batcher's `submit` cancels them on the way out, and a full
queue forgets them). Quick requests pay for a timer only (about 15 us of CPU per
request, measured); requests that never read a body (GET) pay nothing.
"""

from __future__ import annotations

import asyncio

import anyio
import anyio.lowlevel
from fastapi import FastAPI
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import error_response, is_protocol_path
from service.settings import Settings

FORM_OVERHEAD_BYTES = 2**20  # multipart headers and text fields (a kernel is at most 256 KiB)
WATCH_AFTER_S = 0.02  # a disconnect is noticed this late at most; queue waits are far longer


def body_limit(path: str, settings: Settings) -> int:
    """The largest body a request to `path` may send."""
    if is_protocol_path(path):
        return settings.max_v2_body_bytes
    return settings.max_files * settings.max_upload_bytes + FORM_OVERHEAD_BYTES


class BodyTooLarge(HTTPException):
    """Raised from `receive` when a body without Content-Length passes the limit."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than {limit} bytes")


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


class BodyLimitMiddleware:
    """413 before reading when Content-Length is too large; counts chunked bodies as they come."""

    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = body_limit(scope["path"], self.settings)
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            # Closing the connection: the client may still be sending a body we will not read.
            response = error_response(
                Request(scope),
                413,
                "too_large",
                f"the request body ({declared} bytes) is larger than the limit of {limit} bytes",
                {"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        if declared is not None:  # the server itself stops a body at its declared length
            await self.app(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)


class _DisconnectWatch:
    """One request's view of the connection: after the body, a task that waits for disconnect.

    The task starts only once the handler has run for WATCH_AFTER_S, so the many
    requests answered sooner pay for a timer, not a task.
    """

    def __init__(self, receive: Receive, send: Send, cancel_scope: anyio.CancelScope) -> None:
        self._receive = receive
        self._send = send
        self._cancel_scope = cancel_scope
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = None
        self._watcher: asyncio.Task[Message] | None = None
        self._body_read = False
        self._complete = False

    async def receive(self) -> Message:
        if self._body_read:  # the app listens for a disconnect itself; share the one receiver
            return await asyncio.shield(self._start_watching())
        message = await self._receive()
        if message["type"] == "http.disconnect":
            # Gone mid-upload: end the handler here rather than let it fail on half a body.
            self._cancel_scope.cancel()
            await anyio.lowlevel.checkpoint()
        elif not message.get("more_body", False):
            self._body_read = True
            self._timer = self._loop.call_later(WATCH_AFTER_S, self._start_watching)
        return message

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self._complete = True  # set first: the watcher wakes as this send completes
        await self._send(message)

    def _start_watching(self) -> asyncio.Task[Message]:
        if self._watcher is None:
            self._watcher = self._loop.create_task(self._watch())
        return self._watcher

    async def _watch(self) -> Message:
        message = await self._receive()  # returns at disconnect or once the response is done
        if message["type"] == "http.disconnect" and not self._complete:
            self._cancel_scope.cancel()
        return message

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._watcher is not None:
            self._watcher.cancel()  # normally already woken by the finished response


class CancelOnDisconnectMiddleware:
    """Cancel the handler when the client disconnects before its response is complete."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # A cancelled scope ends quietly here: the client is gone, there is no one to answer.
        with anyio.CancelScope() as cancel_scope:
            watch = _DisconnectWatch(receive, send, cancel_scope)
            try:
                await self.app(scope, watch.receive, watch.send)
            finally:
                watch.close()


def install_limits(app: FastAPI, settings: Settings) -> None:
    """Add the limits; call before the metrics middleware so refusals are counted."""
    app.add_middleware(CancelOnDisconnectMiddleware)
    app.add_middleware(BodyLimitMiddleware, settings=settings)
