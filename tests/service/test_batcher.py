"""The dynamic batcher on its own: order, batching, bounds, deadlines, failures."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence

import numpy as np
import pytest

from service.batcher import BatchRecord, DynamicBatcher, Lane, RequestTiming
from service.errors import DeadlineExceeded, InferenceFailed, Overloaded


class RecordingModel:
    """Doubles its input; records the batch sizes and output sets it was asked for."""

    def __init__(self, delay_s: float = 0.0, fail: bool = False) -> None:
        self.batches: list[tuple[int, tuple[str, ...]]] = []
        self.delay_s = delay_s
        self.fail = fail
        self.release = threading.Event()
        self.release.set()
        self.entered = threading.Event()  # set when the inference thread has taken a batch

    def __call__(self, batch: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        self.entered.set()
        self.release.wait()
        time.sleep(self.delay_s)
        self.batches.append((len(batch), tuple(outputs)))
        if self.fail:
            raise RuntimeError("onnxruntime exploded")
        return {name: batch * 2 for name in outputs}


def tensor(value: float) -> np.ndarray:
    return np.full((1, 2, 2), value, np.float32)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def until(condition: Callable[[], bool]) -> None:
    """Let the event loop run other tasks until `condition` holds (no clock involved)."""
    for _ in range(10_000):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError("condition never held")


async def entered(model: RecordingModel) -> None:
    """Until the inference thread has taken a batch and waits at the model's gate."""
    assert await asyncio.to_thread(model.entered.wait, 30)


async def _with_batcher(model: RecordingModel, body, **options):  # type: ignore[no-untyped-def]
    settings = {"max_batch_size": 8, "max_wait_s": 0.05, "max_queue": 64, **options}
    batcher = DynamicBatcher(model, **settings)
    batcher.start()
    try:
        return await body(batcher)
    finally:
        await batcher.stop()


def test_concurrent_requests_share_batches_and_get_their_own_results() -> None:
    model = RecordingModel()

    async def body(batcher: DynamicBatcher) -> list[list[dict[str, np.ndarray]]]:
        return await asyncio.gather(
            *(batcher.submit([tensor(i), tensor(i + 0.5)], ("y",), timeout_s=5) for i in range(12))
        )

    results = run(_with_batcher(model, body))
    for i, pair in enumerate(results):
        assert pair[0]["y"][0, 0, 0] == 2 * i and pair[1]["y"][0, 0, 0] == 2 * i + 1
    sizes = [size for size, _ in model.batches]
    assert sum(sizes) == 24 and max(sizes) == 8 and len(sizes) < 24


def test_a_lone_request_waits_no_longer_than_max_wait() -> None:
    model = RecordingModel()

    async def body(batcher: DynamicBatcher) -> float:
        started = time.monotonic()
        await batcher.submit([tensor(1)], ("y",), timeout_s=5)
        return time.monotonic() - started

    elapsed = run(_with_batcher(model, body, max_wait_s=0.2))
    assert 0.15 < elapsed < 2.0
    assert model.batches == [(1, ("y",))]


def test_a_lone_caller_runs_at_once_when_no_one_else_is_in_flight() -> None:
    model = RecordingModel()

    async def body(batcher: DynamicBatcher) -> float:
        started = time.monotonic()
        await batcher.submit([tensor(1)], ("y",), timeout_s=5)
        return time.monotonic() - started

    # The server holds one request, this one: no company can come, so no window.
    elapsed = run(_with_batcher(model, body, max_wait_s=5.0, callers_in_flight=lambda: 1))
    assert elapsed < 2.5
    assert model.batches == [(1, ("y",))]


def test_the_window_stays_open_for_a_caller_still_on_its_way() -> None:
    model = RecordingModel()
    in_flight = 2  # two requests arrived; the second is still "decoding"

    async def body(batcher: DynamicBatcher) -> float:
        started = time.monotonic()
        first = asyncio.ensure_future(batcher.submit([tensor(1)], ("y",), timeout_s=5))
        await until(lambda: batcher.depth == 1)
        for _ in range(20):  # the worker takes its turns: a closed window would run it now
            await asyncio.sleep(0)
        await batcher.submit([tensor(2)], ("y",), timeout_s=5)
        await first
        return time.monotonic() - started

    elapsed = run(_with_batcher(model, body, max_wait_s=5.0, callers_in_flight=lambda: in_flight))
    # Both ran together, as soon as the companion came rather than at the window's end.
    assert model.batches == [(2, ("y",))]
    assert elapsed < 2.5


def test_different_output_sets_never_share_a_batch() -> None:
    model = RecordingModel()

    async def body(batcher: DynamicBatcher) -> None:
        await asyncio.gather(
            batcher.submit([tensor(1)], ("a",), timeout_s=5),
            batcher.submit([tensor(2)], ("b", "c"), timeout_s=5),
            batcher.submit([tensor(3)], ("a",), timeout_s=5),
        )

    run(_with_batcher(model, body))
    assert sorted(model.batches) == [(1, ("b", "c")), (2, ("a",))]


def test_full_queue_is_refused_at_once() -> None:
    model = RecordingModel()
    model.release.clear()  # inference stalls, so the queue fills

    async def body(batcher: DynamicBatcher) -> None:
        waiting = asyncio.ensure_future(batcher.submit([tensor(0)] * 4, ("y",), timeout_s=5))
        await entered(model)  # the first batch is held by the stalled worker
        queued = asyncio.ensure_future(batcher.submit([tensor(1)] * 4, ("y",), timeout_s=5))
        await until(lambda: batcher.depth == 4)
        with pytest.raises(Overloaded):
            await batcher.submit([tensor(2)], ("y",), timeout_s=5)
        model.release.set()
        assert len(await waiting) == 4 and len(await queued) == 4

    run(_with_batcher(model, body, max_queue=4, max_batch_size=4))


def test_deadline_gives_504_and_drops_the_work() -> None:
    model = RecordingModel()
    model.release.clear()

    async def body(batcher: DynamicBatcher) -> None:
        first = asyncio.ensure_future(batcher.submit([tensor(0)], ("y",), timeout_s=5))
        await entered(model)
        with pytest.raises(DeadlineExceeded):
            await batcher.submit([tensor(1)], ("y",), timeout_s=0.2)
        model.release.set()
        await first
        # Batches run one after another: once a later request is answered, the expired one
        # has been dropped or run.
        await batcher.submit([tensor(2)], ("z",), timeout_s=5)

    run(_with_batcher(model, body, max_batch_size=1))
    assert model.batches == [(1, ("y",)), (1, ("z",))]  # the expired request never ran


def test_inference_failure_fails_that_batch_only() -> None:
    model = RecordingModel(fail=True)

    async def body(batcher: DynamicBatcher) -> dict[str, np.ndarray]:
        with pytest.raises(InferenceFailed, match="exploded"):
            await batcher.submit([tensor(1)], ("y",), timeout_s=5)
        model.fail = False
        return (await batcher.submit([tensor(2)], ("y",), timeout_s=5))[0]

    assert run(_with_batcher(model, body))["y"][0, 0, 0] == 4


class ValueRecorder(RecordingModel):
    """Also records the first value of every image of every batch, in order."""

    def __init__(self) -> None:
        super().__init__()
        self.values: list[list[float]] = []

    def __call__(self, batch: np.ndarray, outputs: Sequence[str]) -> dict[str, np.ndarray]:
        result = super().__call__(batch, outputs)
        self.values.append([float(image[0, 0, 0]) for image in batch])
        return result


def test_interactive_work_overtakes_queued_background_work() -> None:
    model = ValueRecorder()
    model.release.clear()

    async def body(batcher: DynamicBatcher) -> None:
        background = asyncio.ensure_future(
            batcher.submit(
                [tensor(100 + i) for i in range(10)], ("y",), timeout_s=5, lane=Lane.BACKGROUND
            )
        )
        await entered(model)  # the first 4 background images are running
        prediction = asyncio.ensure_future(batcher.submit([tensor(1)], ("y",), timeout_s=5))
        await until(lambda: batcher.depth == 7)
        model.release.set()
        assert (await prediction)[0]["y"][0, 0, 0] == 2
        assert len(await background) == 10

    run(_with_batcher(model, body, max_batch_size=8, max_wait_s=0.0, background_batch_size=4))
    # The prediction runs in the very next batch, alone; background batches stay small.
    assert model.values == [[100, 101, 102, 103], [1], [104, 105, 106, 107], [108, 109]]


def test_jobs_run_on_the_inference_thread_after_interactive_work() -> None:
    model = ValueRecorder()
    model.release.clear()
    threads: list[str] = []

    def job() -> str:
        threads.append(threading.current_thread().name)
        return "done"

    async def body(batcher: DynamicBatcher) -> None:
        first = asyncio.ensure_future(batcher.submit([tensor(1)], ("y",), timeout_s=5))
        await entered(model)
        later_job = asyncio.ensure_future(batcher.run_job(job, timeout_s=5))
        prediction = asyncio.ensure_future(batcher.submit([tensor(2)], ("y",), timeout_s=5))
        await until(lambda: batcher.depth == 1)
        model.release.set()
        await asyncio.gather(first, prediction)
        assert await later_job == "done"

    run(_with_batcher(model, body, max_wait_s=0.0))
    assert model.values == [[1], [2]]  # the job waited for the prediction queued after it
    assert threads and threads[0].startswith("inference")


def test_a_failing_job_fails_its_caller_only() -> None:
    model = RecordingModel()

    def explode() -> None:
        raise RuntimeError("gradient graph exploded")

    async def body(batcher: DynamicBatcher) -> dict[str, np.ndarray]:
        with pytest.raises(InferenceFailed, match="exploded"):
            await batcher.run_job(explode, timeout_s=5)
        return (await batcher.submit([tensor(3)], ("y",), timeout_s=5))[0]

    assert run(_with_batcher(model, body))["y"][0, 0, 0] == 6


def test_items_run_on_the_model_they_were_prepared_for() -> None:
    """A reload swaps `run`: what was queued for the old model still runs on it, alone."""
    old, new = RecordingModel(), RecordingModel()
    old.release.clear()

    async def body(batcher: DynamicBatcher) -> None:
        first = asyncio.ensure_future(batcher.submit([tensor(0)], ("y",), timeout_s=5))
        await entered(old)  # the old model holds a batch; the next items queue behind it
        queued_old = asyncio.ensure_future(batcher.submit([tensor(1)], ("y",), timeout_s=5))
        await until(lambda: batcher.depth == 1)
        batcher.run = new
        queued_new = asyncio.ensure_future(batcher.submit([tensor(2)], ("y",), timeout_s=5))
        await until(lambda: batcher.depth == 2)
        old.release.set()
        await asyncio.gather(first, queued_old, queued_new)

    run(_with_batcher(old, body))
    assert old.batches == [(1, ("y",)), (1, ("y",))]
    assert new.batches == [(1, ("y",))]


def test_one_record_per_batch_and_each_request_timed() -> None:
    model = RecordingModel(delay_s=0.01)
    records: list[BatchRecord] = []
    timings = [RequestTiming("a"), RequestTiming("b"), RequestTiming("a")]

    async def body(batcher: DynamicBatcher) -> None:
        sizes = (5, 2, 3)  # 10 images in batches of at most 4: at least 3 batches
        await asyncio.gather(
            *(
                batcher.submit([tensor(i)] * size, ("y",), timeout_s=5, timing=timing)
                for i, (size, timing) in enumerate(zip(sizes, timings, strict=True))
            ),
            batcher.submit([tensor(9)], ("y",), timeout_s=5),  # untimed, like /v1/predict
        )

    run(_with_batcher(model, body, max_batch_size=4, observe=records.append))
    assert [record.size for record in records] == [size for size, _ in model.batches]
    assert sum(record.size for record in records) == 11
    assert sum(sum(record.tags.values()) for record in records) == 10
    assert sum(record.tags.get("a", 0) for record in records) == 8
    for timing in timings:
        took_part = [r for r in records if r.tags.get(timing.tag)]
        assert 1 <= timing.executions <= len(took_part)
        assert timing.infer_ns >= timing.executions * 10_000_000  # each batch slept 10 ms
        assert timing.queue_ns > 0
    for record in records:
        assert record.inference_ns >= 10_000_000 and record.oldest_wait_ns >= 0
        assert record.input_ns >= 0 and record.output_ns >= 0
    # A batch counts once per request in it (two requests of tag "a" may share one).
    assert sum(t.executions for t in timings) >= sum(len(r.tags) for r in records)
