"""In-process measurements with no HTTP: the limit a perfect server could reach, and references.

The limit runs the same JPEGs through the same decode + preprocess
(`preprocess_bytes` with the service's settings) and the same onnxruntime session
(`service.engine.Engine` with the service's options), pipelined the way a perfect
server would: the next batch decodes on the decode pool while the current one runs.
"""

from __future__ import annotations

import itertools
import os
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from core.manifest import LOGITS_NAME
from core.onnx_tools import with_outputs_only
from core.preprocess import preprocess_bytes
from core.runtime import create_session, session_options
from service.engine import Engine
from service.settings import Settings

BATCH_CANDIDATES = (1, 2, 4, 8, 16, 32, 64)


def timed(fn: Callable[[], object], rounds: int) -> np.ndarray:
    """Seconds taken by each of `rounds` calls."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return np.asarray(times)


@dataclass
class Limit:
    """The in-process figures the service is held against."""

    batch_size: int  # the best one, used for the pipelined run
    throughput: float  # images/s, decode + preprocess + inference pipelined
    inference_only: dict[int, float]  # images/s by batch size, inference alone
    cpu_ms_per_image: float  # process CPU time per image in the pipelined run
    # (images/s, CPU ms per image) pipelined by batch size: the best one and batch 8,
    # near the batches a closed loop of 16 clients forms, for a like-for-like comparison
    pipelined_by_batch: dict[int, tuple[float, float]]
    # Half the compared concurrency: two batches in flight (one decoding, one running)
    # hold as many images as that many closed-loop clients can.
    in_flight_batch: int
    decode_ms: float  # median decode + preprocess of one image
    raw_batch1_ms: float  # median onnxruntime run at batch 1
    raw_batch1_p99_ms: float
    decode_cpu_ms: float = float("nan")  # median thread CPU to decode + preprocess one image
    # Bursts the pipelined figures come from, alternated with the service's (0: measured
    # before the service started, alone).
    paired_bursts: int = 0


def decoder(settings: Settings, engine: Engine) -> Callable[[bytes], np.ndarray]:
    """`preprocess_bytes` exactly as the service calls it."""
    return partial(
        preprocess_bytes,
        spec=engine.artifacts.preprocess,
        max_pixels=settings.max_pixels,
        fast_jpeg=settings.fast_jpeg,
    )


def measure_limit(
    engine: Engine,
    settings: Settings,
    blobs: list[bytes],
    *,
    seconds: float,
    rounds: int,
    candidates: tuple[int, ...] = BATCH_CANDIDATES,
    in_flight_batch: int = 8,
) -> Limit:
    """Inference alone by batch size, then the pipelined run at the best one and at
    `in_flight_batch`."""
    decode = decoder(settings, engine)
    decode_times = timed(lambda: [decode(blob) for blob in blobs], rounds) / len(blobs)
    decode_cpu = decode_cpu_ms(decode, blobs, rounds)
    tensor = decode(blobs[0])
    single = tensor[None]
    engine.run(single)
    raw = timed(lambda: engine.run(single), max(rounds * 2, 5))
    inference_only = {}
    for size in [b for b in candidates if b <= settings.max_batch_size]:
        batch = np.repeat(single, size, axis=0)
        engine.run(batch)
        runs = max(2, min(rounds, round(seconds / 2 / max(raw.min() * size, 1e-3))))
        inference_only[size] = size / float(np.median(timed(partial(engine.run, batch), runs)))
    best = max(inference_only, key=lambda size: inference_only[size])
    by_batch = {}
    in_flight_batch = min(in_flight_batch, best)
    for size in sorted({best, in_flight_batch}, reverse=True):
        cpu = time.process_time()
        rate, images = pipelined(engine, decode, blobs, size, settings, seconds)
        by_batch[size] = (rate, (time.process_time() - cpu) / images * 1000)
    return Limit(
        batch_size=best,
        throughput=by_batch[best][0],
        cpu_ms_per_image=by_batch[best][1],
        pipelined_by_batch=by_batch,
        in_flight_batch=in_flight_batch,
        inference_only=inference_only,
        decode_ms=float(np.median(decode_times)) * 1000,
        raw_batch1_ms=float(np.median(raw)) * 1000,
        raw_batch1_p99_ms=float(np.percentile(raw, 99)) * 1000,
        decode_cpu_ms=decode_cpu,
    )


def decode_cpu_ms(decode: Callable[[bytes], np.ndarray], blobs: list[bytes], rounds: int) -> float:
    """Median over rounds of this thread's CPU time per image to decode + preprocess."""
    per_image = []
    for _ in range(rounds):
        started = time.thread_time()
        for blob in blobs:
            decode(blob)
        per_image.append((time.thread_time() - started) / len(blobs) * 1000)
    return float(np.median(per_image))


@dataclass
class Burst:
    """One pipelined run in process: images, wall seconds and process CPU seconds."""

    images: int
    wall_s: float
    cpu_s: float


def pipelined_burst(
    engine: Engine,
    blobs: list[bytes],
    batch_size: int,
    settings: Settings,
    seconds: float,
) -> Burst:
    """`pipelined` with the process's CPU time (decode pool and onnxruntime threads)."""
    cpu, started = time.process_time(), time.perf_counter()
    _, images = pipelined(engine, decoder(settings, engine), blobs, batch_size, settings, seconds)
    return Burst(images, time.perf_counter() - started, time.process_time() - cpu)


def merge_bursts(bursts: list[Burst]) -> tuple[float, float]:
    """(images per second, CPU ms per image) over bursts taken together."""
    images = sum(b.images for b in bursts)
    wall = sum(b.wall_s for b in bursts)
    return images / wall, sum(b.cpu_s for b in bursts) / images * 1000


@dataclass
class ModelAlone:
    """onnxruntime alone, two precisions alternated: per image at one batch size."""

    batch_size: int
    wall_ms: dict[str, float]  # median wall time per image, by precision
    cpu_ms: dict[str, float]  # process CPU time per image over all runs, by precision

    def ratio(self, slow: str, fast: str) -> float:
        """How many times less CPU per image `fast` takes than `slow`."""
        return self.cpu_ms[slow] / self.cpu_ms[fast]


def model_alone(
    engines: dict[str, Engine], batch_size: int, rounds: int, seconds: float
) -> ModelAlone:
    """Each engine's logits at `batch_size` on the same random batch, alternated round by round."""
    shape = next(iter(engines.values())).artifacts.input_shape
    batch = np.random.default_rng(0).standard_normal((batch_size, *shape), dtype=np.float32)
    walls: dict[str, list[float]] = {name: [] for name in engines}
    cpus = dict.fromkeys(engines, 0.0)
    runs = dict.fromkeys(engines, 0)
    for engine in engines.values():
        engine.run(batch)
    for index in range(rounds):
        order = list(engines) if index % 2 == 0 else list(engines)[::-1]
        for name in order:
            cpu, ends = time.process_time(), time.perf_counter() + seconds / rounds / len(engines)
            while True:
                walls[name].append(float(timed(partial(engines[name].run, batch), 1)[0]))
                runs[name] += 1
                if time.perf_counter() >= ends:
                    break
            cpus[name] += time.process_time() - cpu
    return ModelAlone(
        batch_size,
        {name: float(np.median(w)) / batch_size * 1000 for name, w in walls.items()},
        {name: cpus[name] / (runs[name] * batch_size) * 1000 for name in engines},
    )


def serial_latencies(
    engine: Engine, decode: Callable[[bytes], np.ndarray], blobs: list[bytes], seconds: float
) -> np.ndarray:
    """Seconds per image for decode + preprocess + a batch-1 run, one image after another:
    what a client at concurrency 1 could at best see, with no HTTP."""
    stream = itertools.cycle(blobs)
    times: list[float] = []
    ends = time.perf_counter() + seconds
    while time.perf_counter() < ends or len(times) < 20:
        started = time.perf_counter()
        engine.run(decode(next(stream))[None], (LOGITS_NAME,))
        times.append(time.perf_counter() - started)
    return np.asarray(times)


def pipelined(
    engine: Engine,
    decode: Callable[[bytes], np.ndarray],
    blobs: list[bytes],
    batch_size: int,
    settings: Settings,
    seconds: float,
) -> tuple[float, int]:
    """(images per second, images) when batch k+1 decodes on the pool while batch k runs."""
    workers = settings.decode_threads or os.cpu_count() or 1
    stream = itertools.cycle(blobs)
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:

        def submit() -> list[Future[np.ndarray]]:
            return [pool.submit(decode, next(stream)) for _ in range(batch_size)]

        pending = submit()
        images, started = 0, time.perf_counter()
        while True:
            batch = np.stack([job.result() for job in pending])
            pending = submit()
            engine.run(batch, (LOGITS_NAME,))
            images += batch_size
            elapsed = time.perf_counter() - started
            if elapsed >= seconds and images >= 3 * batch_size:
                break
        for job in pending:
            job.cancel()
    return images / elapsed, images


@dataclass
class LogitsOnly:
    """onnxruntime time for `logits` from the multi-output model vs a logits-only export."""

    batch_size: int
    op_shares: dict[str, float]  # share of onnxruntime kernel time by op type (logits-only)
    multi_ms: float  # session.run(["logits"]) on the multi-output model
    single_ms: float  # the same on a logits-only export
    engine_ms: float  # the service's Engine.run(batch, ("logits",))

    @property
    def cost(self) -> float:
        """Extra time of the multi-output model, as a fraction (0.01 = 1 % slower)."""
        return self.multi_ms / self.single_ms - 1

    @property
    def engine_cost(self) -> float:
        """Extra time of the service's engine asking for logits, as a fraction."""
        return self.engine_ms / self.single_ms - 1


def measure_logits_only(
    engine: Engine, settings: Settings, batch_size: int, rounds: int
) -> LogitsOnly:
    """Both sessions with the service's options, timed alternately so drift hits both alike."""
    threads = settings.intra_op_threads or os.cpu_count() or 1
    shape = engine.artifacts.input_shape
    batch = np.random.default_rng(0).standard_normal((batch_size, *shape), dtype=np.float32)
    path = engine.artifacts.model_path
    # The service's own sessions stay private to its Engine: these two are opened alike.
    multi = create_session(path, settings.provider, threads, spin_wait=settings.spin_wait)
    logits_only = with_outputs_only(path, [LOGITS_NAME])
    single = create_session(logits_only, settings.provider, threads, spin_wait=settings.spin_wait)
    shares = op_shares(logits_only, engine.providers, threads, batch)
    feeds = {engine.input_name: batch}
    calls = [
        partial(multi.run, [LOGITS_NAME], feeds),
        partial(single.run, [LOGITS_NAME], feeds),
        partial(engine.run, batch, (LOGITS_NAME,)),
    ]
    times: list[list[float]] = [[] for _ in calls]
    for call in calls:
        call()
    for _ in range(rounds):  # interleaved: drift on a shared machine hits all three alike
        for call, spent in zip(calls, times, strict=True):
            spent.append(float(timed(call, 1)[0]))
    multi_ms, single_ms, engine_ms = (float(np.median(t)) * 1000 for t in times)
    return LogitsOnly(batch_size, shares, multi_ms, single_ms, engine_ms)


def op_shares(
    model: bytes, providers: list[str], threads: int, batch: np.ndarray, runs: int = 2
) -> dict[str, float]:
    """Where onnxruntime spends a run: kernel time by op type, from its own profiler."""
    import json

    import onnxruntime as ort

    options = session_options(threads)
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as folder:
        options.enable_profiling = True
        options.profile_file_prefix = str(Path(folder) / "ort")
        session = ort.InferenceSession(model, options, providers=providers)
        feeds = {session.get_inputs()[0].name: batch}
        session.run(["logits"], feeds)  # the first run pays one-off set-up
        for _ in range(runs):
            session.run(["logits"], feeds)
        events = json.loads(Path(session.end_profiling()).read_text())
    spent: dict[str, float] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op = event["args"]["op_name"]
            spent[op] = spent.get(op, 0.0) + event["dur"]
    total = sum(spent.values()) or 1.0
    ordered = sorted(spent.items(), key=lambda item: -item[1])
    return {op: duration / total for op, duration in ordered}


@dataclass
class Convolution:
    """A 3x3 kernel on a 1024x1024 RGB image: scipy per channel vs the service's engine."""

    shape: tuple[int, ...]
    scipy_ms: float
    engine_ms: float
    max_abs_diff: float


KERNEL_3X3 = np.array([[1, 2, 0], [0, 1, -1], [-1, 0, -2]], dtype=np.float32)


def measure_convolution(jpeg: bytes, providers: list[str], rounds: int) -> Convolution:
    """Median times of scipy.signal.convolve2d per channel and ConvolutionEngine.convolve."""
    from scipy.signal import convolve2d

    from core.preprocess import decode_image
    from service.numerics.convolution import ConvolutionEngine

    pixels = np.asarray(decode_image(jpeg), dtype=np.float32).transpose(2, 0, 1).copy()
    engine = ConvolutionEngine(providers)

    def with_scipy() -> np.ndarray:
        return np.stack([convolve2d(channel, KERNEL_3X3, mode="same") for channel in pixels])

    def with_engine() -> np.ndarray:
        return engine.convolve(pixels, KERNEL_3X3, mode="convolution", padding="same")

    expected, got = with_scipy(), with_engine()
    return Convolution(
        shape=tuple(pixels.shape),
        scipy_ms=float(np.median(timed(with_scipy, rounds))) * 1000,
        engine_ms=float(np.median(timed(with_engine, rounds))) * 1000,
        max_abs_diff=float(np.max(np.abs(expected - got))),
    )
