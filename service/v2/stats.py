"""Triton's statistics extension: per model view, counts and integer nanoseconds.

No bookkeeping of its own: the batcher's one `BatchRecord` per batch, which Prometheus
gets too, gives `execution_count`, `inference_count` (images run through the model, as
the `alexnet_images` counter) and `batch_stats`; the `RequestTiming` the batcher fills
for each request gives its queue and inference time; the route adds what it measured
itself (parsing and preprocessing as `compute_input`, encoding as `compute_output`, the
whole request as `success`/`fail`). Everything runs on the event loop's thread (the
batcher calls its observer there), so nothing needs a lock.

The JSON is what Triton answers: every count and `ns` a JSON integer, `version` a string
of digits (perf_analyzer reads them as uint64 and the version with stoll). Counters only
grow, across reloads too: perf_analyzer subtracts them as unsigned integers.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, TypeGuard

from service.batcher import BatchRecord, RequestTiming

ViewKey = tuple[str, str]  # (view name, version)


@dataclass
class Duration:
    """Triton's StatisticDuration."""

    count: int = 0
    ns: int = 0

    def add(self, ns: int) -> None:
        self.count += 1
        self.ns += ns

    def to_json(self) -> dict[str, int]:
        return {"count": self.count, "ns": self.ns}


@dataclass
class BatchStats:
    """Executions of one batch size."""

    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)


@dataclass
class ViewStats:
    """One model version's statistics."""

    last_inference: int = 0  # ms since the epoch
    inference_count: int = 0
    execution_count: int = 0
    success: Duration = field(default_factory=Duration)
    fail: Duration = field(default_factory=Duration)
    queue: Duration = field(default_factory=Duration)
    compute_input: Duration = field(default_factory=Duration)
    compute_infer: Duration = field(default_factory=Duration)
    compute_output: Duration = field(default_factory=Duration)
    batches: dict[int, BatchStats] = field(default_factory=dict)

    def to_json(self, name: str, version: str) -> dict[str, Any]:
        stages = ("success", "fail", "queue", "compute_input", "compute_infer", "compute_output")
        inference = {stage: getattr(self, stage).to_json() for stage in stages}
        no_cache = Duration().to_json()  # there is no response cache
        return {
            "name": name,
            "version": version,
            "last_inference": self.last_inference,
            "inference_count": self.inference_count,
            "execution_count": self.execution_count,
            "inference_stats": {**inference, "cache_hit": no_cache, "cache_miss": no_cache},
            "response_stats": {},
            "batch_stats": [
                {
                    "batch_size": size,
                    "compute_input": stats.compute_input.to_json(),
                    "compute_infer": stats.compute_infer.to_json(),
                    "compute_output": stats.compute_output.to_json(),
                }
                for size, stats in sorted(self.batches.items())
            ],
            "memory_usage": [],
        }


class InferenceStatistics:
    """Every view's statistics, fed by the batcher's records and the routes' requests."""

    def __init__(self) -> None:
        self._views: dict[ViewKey, ViewStats] = {}

    def of(self, key: ViewKey) -> ViewStats:
        return self._views.setdefault(key, ViewStats())

    def record_batch(self, record: BatchRecord) -> None:
        """One batch ran: an execution of every view with images in it."""
        now_ms = time.time_ns() // 1_000_000
        for tag, images in record.tags.items():
            if not _is_view_key(tag):
                continue
            stats = self.of(tag)
            stats.execution_count += 1
            stats.inference_count += images
            stats.last_inference = now_ms
            batch = stats.batches.setdefault(record.size, BatchStats())
            batch.compute_input.add(record.input_ns)
            batch.compute_infer.add(record.inference_ns)
            batch.compute_output.add(record.output_ns)

    def record_success(
        self, timing: RequestTiming, *, input_ns: int, output_ns: int, total_ns: int
    ) -> None:
        """A request answered: its stages, with what the batcher measured for it."""
        if not _is_view_key(timing.tag):
            return
        stats = self.of(timing.tag)
        stats.success.add(total_ns)
        stats.queue.add(timing.queue_ns)
        stats.compute_input.add(input_ns)
        stats.compute_infer.add(timing.infer_ns)
        stats.compute_output.add(output_ns)

    def record_failure(self, key: ViewKey, total_ns: int) -> None:
        self.of(key).fail.add(total_ns)


def _is_view_key(tag: Hashable) -> TypeGuard[ViewKey]:
    return isinstance(tag, tuple) and len(tag) == 2 and all(isinstance(p, str) for p in tag)
