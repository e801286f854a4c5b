"""Dynamic batching: images from concurrent requests run through the model together.

Contract: `submit(tensors, outputs)` queues one item per image and returns their
results in order. The worker takes the oldest item, then every queued item that
asks for the same outputs, up to `max_batch_size`, waiting at most `max_wait_s`
after the oldest arrived for more to join, and only while more may come: with
`callers_in_flight` (requests the server is handling that may still submit), a
batch runs at once when every such request has already submitted, so a lone
request never waits for company. While a batch runs, the next one gathers. The
queue is bounded (`Overloaded` at once when full), items past their deadline or
whose caller has gone are dropped before they cost inference.

Two lanes: interactive work (predictions, activations, v2 inference) goes first;
background work (an explanation's dozens of occluded copies, its gradient runs with
`run_job`) runs only when no interactive item waits, in batches of at most
`background_batch_size`, and never joins an interactive batch (it would make that
batch slower). So an explanation holds a prediction back by at most one small batch,
and every onnxruntime call still runs on the one inference thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from service.errors import DeadlineExceeded, InferenceFailed, Overloaded, TooLarge

RunFn = Callable[[np.ndarray, Sequence[str]], dict[str, np.ndarray]]
Observer = Callable[[int, float, float], None]  # batch size, queue wait s, inference s
CallerCount = Callable[[], int]
T = TypeVar("T")


class Lane(Enum):
    INTERACTIVE = "interactive"
    BACKGROUND = "background"


@dataclass(eq=False)
class _Item:
    tensor: np.ndarray
    outputs: tuple[str, ...]
    future: asyncio.Future[dict[str, np.ndarray]]
    enqueued: float
    deadline: float


@dataclass(eq=False)
class _Job:
    """A callable to run on the inference thread in the background lane (not batched)."""

    run: Callable[[], Any]
    future: asyncio.Future[Any]
    enqueued: float
    deadline: float = field(default=float("inf"))


class DynamicBatcher:
    """Queue, gather, run in one inference thread, hand results back in order."""

    def __init__(
        self,
        run: RunFn,
        *,
        max_batch_size: int,
        max_wait_s: float,
        max_queue: int,
        observe: Observer | None = None,
        callers_in_flight: CallerCount | None = None,
        background_batch_size: int | None = None,
    ) -> None:
        self._run = run
        self.background_batch_size = background_batch_size or max_batch_size
        self._callers_in_flight = callers_in_flight
        self._submitting = 0  # interactive submit() calls waiting for their results
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_queue = max_queue
        self._observe = observe
        self._lanes: dict[Lane, deque[_Item]] = {lane: deque() for lane in Lane}
        self._jobs: deque[_Job] = deque()
        self._arrived = asyncio.Event()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="inference")
        self._worker: asyncio.Task[None] | None = None

    @property
    def depth(self) -> int:
        """Images waiting for inference, in both lanes."""
        return sum(len(queue) for queue in self._lanes.values())

    def start(self) -> None:
        self._worker = asyncio.get_running_loop().create_task(self._work(), name="batcher")

    async def stop(self) -> None:
        """Finish nothing new; fail what still waits; release the inference thread."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        futures: list[asyncio.Future[Any]] = [job.future for job in self._jobs]
        futures += [item.future for queue in self._lanes.values() for item in queue]
        for future in futures:
            if not future.done():
                future.set_exception(Overloaded("the server is shutting down"))
        self._executor.shutdown(wait=True)

    async def submit(
        self,
        tensors: Sequence[np.ndarray],
        outputs: Sequence[str] = ("logits",),
        *,
        timeout_s: float,
        lane: Lane = Lane.INTERACTIVE,
    ) -> list[dict[str, np.ndarray]]:
        """Run each (3, H, W) tensor; results in the same order. All or nothing per request."""
        if len(tensors) > self.max_queue:  # would never fit: retrying cannot help, so not 503
            raise TooLarge(
                f"{len(tensors)} images in one request; the inference queue holds {self.max_queue}"
            )
        if self.depth + len(tensors) > self.max_queue:
            self._drop_abandoned()  # only when full: callers that left must not hold slots
            if self.depth + len(tensors) > self.max_queue:
                raise Overloaded(
                    f"the inference queue is full ({self.max_queue} images); retry soon"
                )
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        key = tuple(outputs)
        items = [_Item(t, key, loop.create_future(), now, now + timeout_s) for t in tensors]
        self._lanes[lane].extend(items)
        interactive = lane is Lane.INTERACTIVE
        self._submitting += interactive
        self._arrived.set()
        try:
            return list(
                await asyncio.wait_for(asyncio.gather(*(i.future for i in items)), timeout_s)
            )
        except TimeoutError:
            raise DeadlineExceeded(f"no answer within {timeout_s:g} s") from None
        finally:
            self._submitting -= interactive
            for item in items:  # a caller that left (cancel, timeout) frees its queue slots
                if not item.future.done():
                    item.future.cancel()

    async def run_job(self, run: Callable[[], T], *, timeout_s: float) -> T:
        """`run()` on the inference thread, in the background lane (e.g. a gradient graph)."""
        loop = asyncio.get_running_loop()
        now = time.monotonic()
        job = _Job(run, loop.create_future(), now, now + timeout_s)
        self._jobs.append(job)
        self._arrived.set()
        try:
            return await asyncio.wait_for(job.future, timeout_s)
        except TimeoutError:
            raise DeadlineExceeded(f"no answer within {timeout_s:g} s") from None
        finally:
            if not job.future.done():
                job.future.cancel()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            work = await self._next()
            if isinstance(work, _Job):
                await self._run_job(loop, work)
            elif work:
                await self._run_batch(loop, work)

    async def _run_job(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        try:
            result = await loop.run_in_executor(self._executor, job.run)
        except Exception as exc:  # a failing job fails its caller, never the worker
            if not job.future.done():
                job.future.set_exception(InferenceFailed(f"inference failed: {exc}"))
            return
        if not job.future.done():
            job.future.set_result(result)

    async def _run_batch(self, loop: asyncio.AbstractEventLoop, batch: list[_Item]) -> None:
        started = time.monotonic()
        try:  # stacking too: any failure must fail this batch, never stop the worker
            stacked = np.stack([item.tensor for item in batch])
            results = await loop.run_in_executor(
                self._executor, self._run, stacked, batch[0].outputs
            )
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(InferenceFailed(f"inference failed: {exc}"))
            return
        finished = time.monotonic()
        if self._observe is not None:
            oldest = min(item.enqueued for item in batch)
            self._observe(len(batch), started - oldest, finished - started)
        for index, item in enumerate(batch):
            if not item.future.done():
                item.future.set_result({k: v[index] for k, v in results.items()})

    def _drop_abandoned(self) -> None:
        """Forget queued items whose caller has gone (disconnected, timed out)."""
        for lane, queue in self._lanes.items():
            self._lanes[lane] = deque(item for item in queue if not item.future.done())

    async def _next(self) -> list[_Item] | _Job:
        """The next work: an interactive batch (after its window), else background work."""
        while not (self.depth or self._jobs):
            self._arrived.clear()
            await self._arrived.wait()
        interactive = self._lanes[Lane.INTERACTIVE]
        if not interactive:
            background = self._lanes[Lane.BACKGROUND]
            self._drop_finished_jobs()
            if self._jobs and (not background or self._jobs[0].enqueued <= background[0].enqueued):
                return self._jobs.popleft()
            return self._take_batch(Lane.BACKGROUND, self.background_batch_size)
        first_arrival = interactive[0].enqueued
        while len(interactive) < self.max_batch_size and self._companion_may_come():
            remaining = first_arrival + self.max_wait_s - time.monotonic()
            if remaining <= 0:
                break
            self._arrived.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), remaining)
        return self._take_batch(Lane.INTERACTIVE, self.max_batch_size)

    def _drop_finished_jobs(self) -> None:
        while self._jobs and self._jobs[0].future.done():  # its caller is gone
            self._jobs.popleft()

    def _companion_may_come(self) -> bool:
        """Whether a request the server holds has yet to submit (unknown: assume so)."""
        if self._callers_in_flight is None:
            return True
        return self._callers_in_flight() > self._submitting

    def _take_batch(self, lane: Lane, size: int) -> list[_Item]:
        """Up to `size` of the lane's items that ask for the same outputs as its oldest."""
        now = time.monotonic()
        batch: list[_Item] = []
        key: tuple[str, ...] | None = None
        kept: deque[_Item] = deque()
        queue = self._lanes[lane]
        while queue:
            item = queue.popleft()
            if item.future.done():  # cancelled: its caller is gone
                continue
            if item.deadline <= now:
                item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
                continue
            if len(batch) < size and key in (None, item.outputs):
                key = item.outputs
                batch.append(item)
            else:
                kept.append(item)
        self._lanes[lane] = kept
        return batch
