"""Requests in flight: the batcher's hint of whether a companion may still come.

A lone request should not wait out the batching window for companions that cannot
arrive. The batcher compares this count with its own callers: a POST the server is
handling that has not reached the batcher yet (its body still arriving, its image
still decoding) may join the batch; when there is none, the batch runs at once.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send


class InFlight:
    """How many POST requests are between arriving and their answer being sent."""

    def __init__(self) -> None:
        self.count = 0


class InFlightMiddleware:
    """Pure ASGI: a counter around the request, nothing else on the hot path."""

    def __init__(self, app: ASGIApp, in_flight: InFlight) -> None:
        self.app = app
        self.in_flight = in_flight

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # Only POSTs can reach the batcher. Counting every POST (convolve and pool too)
        # errs towards waiting: at worst a batch waits the window it waited before.
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        self.in_flight.count += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight.count -= 1
