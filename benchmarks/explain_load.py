"""Explanations in the bench: their latency, and what they cost predictions running beside them.

- Latency at concurrency 1 of Grad-CAM (conv5) and occlusion (the service's default grid),
  alternated with /v1/predict on the same image so drift hits all three alike.
- Predictions at a fixed concurrency alone, then with one client asking for occlusions
  the whole time, in alternating bursts: the p99 of the predictions in both.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import httpx
import numpy as np

from benchmarks.corpus import Multipart, Upload
from benchmarks.loadgen import LoadResult, run_load


@dataclass
class ExplainLatency:
    predict_ms: float
    gradcam_ms: float
    occlusion_ms: float
    occlusion_passes: int
    occlusion_patch: int  # the service's default grid, as its answers state it
    occlusion_stride: int


def _timed_post(http: httpx.Client, path: str, image: Upload, **form: str) -> tuple[float, dict]:
    started = time.perf_counter()
    response = http.post(path, files={"image": (image.name, image.data)}, data=form)
    elapsed = time.perf_counter() - started
    if response.status_code != 200:
        raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
    return elapsed, response.json()


def explain_latency(url: str, image: Upload, rounds: int) -> ExplainLatency:
    """Median ms of predict, Grad-CAM and occlusion, one request at a time, alternated."""
    times: dict[str, list[float]] = {"predict": [], "gradcam": [], "occlusion": []}
    occlusion: dict = {}
    with httpx.Client(base_url=url, timeout=300) as http:
        _timed_post(http, "/v1/explain/gradcam", image)  # opens the gradient graph
        for _ in range(rounds):
            times["predict"].append(_timed_post(http, "/v1/predict", image)[0])
            times["gradcam"].append(_timed_post(http, "/v1/explain/gradcam", image)[0])
            elapsed, occlusion = _timed_post(http, "/v1/explain/occlusion", image)
            times["occlusion"].append(elapsed)
    medians = {name: float(np.median(spent)) * 1000 for name, spent in times.items()}
    return ExplainLatency(
        medians["predict"],
        medians["gradcam"],
        medians["occlusion"],
        occlusion_passes=int(occlusion["forward_passes"]),
        occlusion_patch=int(occlusion["patch"]),
        occlusion_stride=int(occlusion["stride"]),
    )


@dataclass
class MixedLoad:
    concurrency: int
    alone: list[LoadResult]
    mixed: list[LoadResult]
    occlusions: int  # completed by the explaining client during the mixed bursts
    background_batch: int  # the most occluded copies one background batch holds

    @property
    def alone_p99_ms(self) -> float:
        return float(np.median([result.p99_ms for result in self.alone]))

    @property
    def mixed_p99_ms(self) -> float:
        return float(np.median([result.p99_ms for result in self.mixed]))

    @property
    def p99_ratio(self) -> float:
        return self.mixed_p99_ms / self.alone_p99_ms


def predictions_beside_explanations(
    url: str,
    client: str,
    bodies: list[Multipart],
    image: Upload,
    concurrency: int,
    seconds: float,
    rounds: int,
    background_batch: int,
) -> MixedLoad:
    """Bursts of predictions alone and with one occlusion client running, alternated."""
    alone: list[LoadResult] = []
    mixed: list[LoadResult] = []
    done = [0]
    for _ in range(rounds):
        alone.append(run_load(client, f"{url}/v1/predict", bodies, concurrency, seconds))
        stop = threading.Event()

        def explain_until(stop: threading.Event) -> None:
            with httpx.Client(base_url=url, timeout=300) as http:
                while not stop.is_set():
                    _timed_post(http, "/v1/explain/occlusion", image)
                    done[0] += 1

        explainer = threading.Thread(target=explain_until, args=(stop,), daemon=True)
        explainer.start()
        mixed.append(run_load(client, f"{url}/v1/predict", bodies, concurrency, seconds))
        stop.set()
        explainer.join(timeout=300)
    return MixedLoad(concurrency, alone, mixed, done[0], background_batch)
