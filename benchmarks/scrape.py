"""Read the service's own histograms from /metrics before and after a load level, and diff them."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import httpx
from prometheus_client.parser import text_string_to_metric_families

HISTOGRAMS = (
    "alexnet_queue_wait_seconds",
    "alexnet_inference_seconds",
    "alexnet_batch_size",
    "alexnet_decode_cpu_seconds",
)
# Request durations as the server saw them, only for the requests the load generator sends
# (the scrapes themselves are requests too).
REQUESTS = "alexnet_http_request_duration_seconds"
PREDICT_LABELS = {"method": "POST", "route": "/v1/predict", "status": "200"}


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts by upper bound, the sum and the count of one histogram."""

    buckets: tuple[tuple[float, float], ...]
    total: float
    count: float

    def __sub__(self, other: Histogram) -> Histogram:
        before = dict(other.buckets)
        return Histogram(
            tuple((le, n - before.get(le, 0.0)) for le, n in self.buckets),
            self.total - other.total,
            self.count - other.count,
        )

    def __add__(self, other: Histogram) -> Histogram:
        extra = dict(other.buckets)
        return Histogram(
            tuple((le, n + extra.get(le, 0.0)) for le, n in self.buckets),
            self.total + other.total,
            self.count + other.count,
        )

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else math.nan

    def quantile(self, q: float) -> float:
        """Upper bound of the bucket holding the q-quantile (Prometheus' own resolution)."""
        if not self.count:
            return math.nan
        for le, cumulative in self.buckets:
            if cumulative >= q * self.count:
                return le
        return math.inf

    def counts(self) -> list[tuple[float, float, int]]:
        """(lower, upper, how many) for each bucket that holds observations."""
        rows, previous, lower = [], 0.0, 0.0
        for le, cumulative in self.buckets:
            if cumulative - previous > 0:
                rows.append((lower, le, round(cumulative - previous)))
            previous, lower = cumulative, le
        return rows


def scrape(url: str) -> dict[str, Histogram]:
    """The service's batch histograms and its successful predicts' durations, by name."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    found: dict[str, Histogram] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in (*HISTOGRAMS, REQUESTS):
            continue
        buckets, total, count = [], 0.0, 0.0
        for sample in family.samples:
            if family.name == REQUESTS and any(
                sample.labels.get(k) != v for k, v in PREDICT_LABELS.items()
            ):
                continue
            if sample.name.endswith("_bucket"):
                buckets.append((float(sample.labels["le"]), float(sample.value)))
            elif sample.name.endswith("_sum"):
                total = float(sample.value)
            elif sample.name.endswith("_count"):
                count = float(sample.value)
        found[family.name] = Histogram(tuple(sorted(buckets)), total, count)
    return found


def diff(after: dict[str, Histogram], before: dict[str, Histogram]) -> dict[str, Histogram]:
    """What happened between two scrapes."""
    return {name: after[name] - before[name] for name in after if name in before}


def batch_sizes(histogram: Histogram) -> str:
    """The batch sizes that ran, as 'size: batches' per bucket, e.g. '1: 3, 9-12: 40'."""
    parts = []
    for lower, upper, count in histogram.counts():
        low = int(lower) + 1
        if math.isinf(upper):
            label = f">{int(lower)}"
        else:
            label = f"{int(upper)}" if low >= upper else f"{low}-{int(upper)}"
        parts.append(f"{label}: {count}")
    return ", ".join(parts) or "none"


def _activity(url: str) -> tuple[float, float]:
    """(batches run so far, images queued now)."""
    text = httpx.get(f"{url}/metrics", timeout=30).text
    batches = depth = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "alexnet_batch_size_count":
                batches = float(sample.value)
            elif sample.name == "alexnet_queue_depth":
                depth = float(sample.value)
    return batches, depth


def settle(url: str, quiet_s: float = 0.5, timeout_s: float = 60) -> None:
    """Wait until the server has no queued images and ran no batch for `quiet_s` seconds.

    A load generator stops with requests in flight; the server still finishes them,
    and they must not count towards the next level.
    """
    deadline = time.monotonic() + timeout_s
    last = _activity(url)
    while time.monotonic() < deadline:
        time.sleep(quiet_s)
        now = _activity(url)
        if now == last and now[1] == 0:
            return
        last = now
