"""Prometheus metrics, on a registry of the app's own (tests run several apps in one process)."""

from __future__ import annotations

import asyncio
import time

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    generate_latest,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.batcher import BatchRecord

CLIENT_CLOSED = 499
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 128)


class Metrics:
    """Every metric the service exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "alexnet_http_requests",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "alexnet_http_request_duration_seconds",
            "HTTP request latency by route and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "alexnet_batch_size", "images per inference batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.queue_wait = Histogram(
            "alexnet_queue_wait_seconds",
            "time the oldest image of a batch waited in the queue",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.inference = Histogram(
            "alexnet_inference_seconds",
            "onnxruntime time per batch",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.decode_cpu = Histogram(
            "alexnet_decode_cpu_seconds",
            "CPU time (of its thread) to decode and preprocess one image",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge("alexnet_queue_depth", "images waiting for inference", registry=r)
        self.images = Counter("alexnet_images", "images run through the model", registry=r)
        self.model = Info("alexnet_model", "the model being served and where it runs", registry=r)

    def observe_batch(self, record: BatchRecord) -> None:
        """Called after each batch with the batcher's record (also the v2 statistics' source)."""
        self.batch_size.observe(record.size)
        self.queue_wait.observe(record.oldest_wait_ns / 1e9)
        self.inference.observe(record.inference_ns / 1e9)
        self.images.inc(record.size)

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class MetricsMiddleware:
    """Counts and times every request under its route template, not its raw path."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        except asyncio.CancelledError:
            # The client left before an answer started (nginx's 499): not a server fault.
            if status == 500:
                status = CLIENT_CLOSED
            raise
        finally:
            route = scope.get("route")
            # Unmatched paths share one label so random URLs cannot blow up cardinality.
            path = getattr(route, "path", None) or "unmatched"
            labels = (scope["method"], path, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(time.perf_counter() - started)
