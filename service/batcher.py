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

Each item runs on the model it was prepared for (`run`, by default the batcher's
current one): after a reload swaps `run`, items queued for the old model still run
on it, never in a batch with the new one's. After each batch the observer gets
one `BatchRecord` (the one measurement Prometheus and the v2 statistics share), and
every request that passed a `RequestTiming` has its queue and inference time added.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, deque
from collections.abc import Callable, Hashable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, TypeVar

import numpy as np

from service.errors import DeadlineExceeded, InferenceFailed, Overloaded, TooLarge

RunFn = Callable[[np.ndarray, Sequence[str]], dict[str, np.ndarray]]
CallerCount = Callable[[], int]
T = TypeVar("T")


class Lane(Enum):
    INTERACTIVE = "interactive"
    BACKGROUND = "background"


@dataclass(frozen=True)
class BatchRecord:
    """One batch run, measured once: integer nanoseconds of the monotonic clock."""

    size: int
    oldest_wait_ns: int  # from the oldest image's arrival to the batch's start
    input_ns: int  # stacking the images into one tensor
    inference_ns: int  # the model run
    output_ns: int  # handing each image its results
    tags: Mapping[Hashable, int]  # images per tag of the requests that had one


Observer = Callable[[BatchRecord], None]


@dataclass(eq=False)
class RequestTiming:
    """What the batcher measured for one request, filled in as its batches run."""

    tag: Hashable  # whose request it is (the v2 statistics: the model view)
    queue_ns: int = 0  # the longest any of its images waited
    infer_ns: int = 0  # the model time of every batch its images were in
    executions: int = 0  # how many batches those were


@dataclass(eq=False)
class _Item:
    tensor: np.ndarray
    outputs: tuple[str, ...]
    run: RunFn
    future: asyncio.Future[dict[str, np.ndarray]]
    enqueued_ns: int
    deadline: float
    timing: RequestTiming | None = None

    @property
    def enqueued(self) -> float:
        return self.enqueued_ns / 1e9

    @property
    def key(self) -> tuple[RunFn, tuple[str, ...]]:
        """Items batch together when they run on the same model for the same outputs."""
        return self.run, self.outputs


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
        self.run = run  # the model new items run on unless they name their own
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
        run: RunFn | None = None,
        timing: RequestTiming | None = None,
    ) -> list[dict[str, np.ndarray]]:
        """Run each (3, H, W) tensor; results in the same order. All or nothing per request.

        `run`: the model the tensors were prepared for (default: the current one).
        `timing`: filled in with this request's queue and inference time as it runs.
        """
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
        now_ns = time.monotonic_ns()
        deadline = now_ns / 1e9 + timeout_s
        names, model = tuple(outputs), run or self.run
        items = [
            _Item(t, names, model, loop.create_future(), now_ns, deadline, timing) for t in tensors
        ]
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
        started = time.monotonic_ns()
        try:  # stacking too: any failure must fail this batch, never stop the worker
            stacked = np.stack([item.tensor for item in batch])
            stacked_at = time.monotonic_ns()
            results = await loop.run_in_executor(
                self._executor, batch[0].run, stacked, batch[0].outputs
            )
        except Exception as exc:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(InferenceFailed(f"inference failed: {exc}"))
            return
        finished = time.monotonic_ns()
        for index, item in enumerate(batch):
            if not item.future.done():
                item.future.set_result({k: v[index] for k, v in results.items()})
        handed = time.monotonic_ns()
        self._account(batch, started, finished - stacked_at)
        if self._observe is not None:
            tags = Counter(item.timing.tag for item in batch if item.timing is not None)
            self._observe(
                BatchRecord(
                    size=len(batch),
                    oldest_wait_ns=started - min(item.enqueued_ns for item in batch),
                    input_ns=stacked_at - started,
                    inference_ns=finished - stacked_at,
                    output_ns=handed - finished,
                    tags=tags,
                )
            )

    @staticmethod
    def _account(batch: list[_Item], started: int, inference_ns: int) -> None:
        """Each request's timing: its longest queue wait, and this batch's model time once."""
        counted: set[int] = set()
        for item in batch:
            timing = item.timing
            if timing is None:
                continue
            timing.queue_ns = max(timing.queue_ns, started - item.enqueued_ns)
            if id(timing) not in counted:
                counted.add(id(timing))
                timing.infer_ns += inference_ns
                timing.executions += 1

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
        key: tuple[RunFn, tuple[str, ...]] | None = None
        kept: deque[_Item] = deque()
        queue = self._lanes[lane]
        while queue:
            item = queue.popleft()
            if item.future.done():  # cancelled: its caller is gone
                continue
            if item.deadline <= now:
                item.future.set_exception(DeadlineExceeded("deadline passed while queued"))
                continue
            if len(batch) < size and key in (None, item.key):
                key = item.key
                batch.append(item)
            else:
                kept.append(item)
        self._lanes[lane] = kept
        return batch
