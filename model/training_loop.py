"""The pieces of one training run: the learning-rate schedule, an epoch, an evaluation.

The schedule is warm-up then cosine decay, driven by whichever runs out first, the
planned steps or the time budget, so that a run cut short by `--max-minutes` still
ends with an annealed learning rate instead of being stopped at its peak.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader
from tqdm import tqdm

from model.network import AlexNet

WARMUP = 0.06  # fraction of the run spent raising the learning rate from near zero
# Without batch norm, the first steps' gradients are several times the later ones; a
# clip at about the typical norm stops one of them from killing the ReLUs of fc6/fc7.
CLIP_NORM = 10.0
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # mallopt parameters, from glibc's malloc.h


def keep_freed_memory() -> None:
    """Ask glibc to keep freed memory instead of handing it back to the kernel at once.

    A training step allocates and frees hundreds of megabytes (activations, their
    gradients); by default each large block is a fresh mmap whose pages the kernel must
    fault in and zero again. Keeping them cut the CPU time of a step on a 2-core
    machine by about a fifth. Best effort: a no-op where the C library is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(_M_MMAP_THRESHOLD, 1 << 30)
        libc.mallopt(_M_TRIM_THRESHOLD, 1 << 30)
    except (OSError, AttributeError):
        pass


class Schedule:
    """Warm-up and cosine decay over progress in [0, 1]; progress = max(steps, time) done."""

    def __init__(
        self, optimizer: torch.optim.Optimizer, *, peak_lr: float, total_steps: int
    ) -> None:
        self.optimizer, self.peak_lr, self.total_steps = optimizer, peak_lr, max(1, total_steps)
        self.steps, self.progress = 0, 0.0
        self._resumed_at = 0.0
        self.apply()

    def lr(self) -> float:
        """The learning rate at the current progress."""
        if self.progress < WARMUP:
            return self.peak_lr * max(self.progress, 0.01 * WARMUP) / WARMUP
        decay = (self.progress - WARMUP) / (1 - WARMUP)
        return self.peak_lr * 0.5 * (1 + math.cos(math.pi * min(decay, 1.0)))

    def apply(self) -> None:
        for group in self.optimizer.param_groups:
            group["lr"] = self.lr()

    def step(self, time_fraction: float = 0.0) -> None:
        """Count one optimiser step; `time_fraction` is how much of this run's time is used."""
        self.steps += 1
        by_time = self._resumed_at + (1 - self._resumed_at) * time_fraction
        self.progress = min(1.0, max(self.progress, self.steps / self.total_steps, by_time))
        self.apply()

    def state_dict(self) -> dict[str, Any]:
        return {"steps": self.steps, "progress": self.progress}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.steps, self.progress = int(state["steps"]), float(state["progress"])
        # A resumed run spreads its own time budget over the progress that is left.
        self._resumed_at = self.progress
        self.apply()


@dataclass
class Clock:
    """Wall-clock time left before the run must stop, with a reserve for the final save."""

    deadline: float | None  # time.monotonic() value, or None for no budget
    reserve: float = 0.0  # seconds kept for the last validation and checkpoint
    train_started: float = 0.0

    def left(self) -> float:
        if self.deadline is None:
            return math.inf
        return self.deadline - self.reserve - time.monotonic()

    def fraction(self) -> float:
        """Share of the training time used so far, in [0, 1] (0 without a budget)."""
        if self.deadline is None:
            return 0.0
        span = self.deadline - self.reserve - self.train_started
        return 1.0 if span <= 0 else min(1.0, (time.monotonic() - self.train_started) / span)


@dataclass
class Precision:
    """Mixed precision on CUDA (bfloat16 where supported, else float16 with a scaler)."""

    device: torch.device

    def __post_init__(self) -> None:
        cuda = self.device.type == "cuda"
        self.dtype = (
            torch.bfloat16
            if cuda and torch.cuda.is_bf16_supported()
            else torch.float16
            if cuda
            else None
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.dtype == torch.float16)

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        if self.dtype is None:
            return contextlib.nullcontext()
        return torch.autocast("cuda", dtype=self.dtype)


def _batches(loader: DataLoader, device: torch.device) -> Iterator[tuple[torch.Tensor, ...]]:
    for images, labels in loader:
        images = images.to(device, non_blocking=True)
        yield images, labels.to(device, non_blocking=True)


def train_epoch(
    model: AlexNet,
    loader: DataLoader,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    precision: Precision,
    clock: Clock,
    *,
    description: str,
) -> tuple[float, float, bool]:
    """One pass over `loader`: (mean loss, accuracy, stopped early by the clock)."""
    model.train()
    device = precision.device
    total_loss, correct, seen = 0.0, 0, 0
    stopped = False
    bar = tqdm(
        _batches(loader, device),
        total=len(loader),
        desc=description,
        unit="batch",
        leave=False,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    for images, labels in bar:
        with precision.autocast():
            logits = model(images)
            loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=False)  # reuse the 240 MB of gradients
        precision.scaler.scale(loss).backward()
        precision.scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(model.parameters(), CLIP_NORM)
        precision.scaler.step(optimizer)
        precision.scaler.update()
        schedule.step(clock.fraction())
        total_loss += loss.item() * len(labels)
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
        bar.set_postfix(
            loss=f"{total_loss / seen:.3f}", acc=f"{correct / seen:.1%}", lr=f"{schedule.lr():.2g}"
        )
        if clock.left() <= 0:
            stopped = True
            break
    bar.close()
    return total_loss / max(seen, 1), correct / max(seen, 1), stopped


@torch.no_grad()
def evaluate(model: AlexNet, loader: DataLoader, precision: Precision) -> tuple[float, float]:
    """(mean loss, accuracy) of `model` over `loader`."""
    model.eval()
    total_loss, correct, seen = 0.0, 0, 0
    for images, labels in _batches(loader, precision.device):
        with precision.autocast():
            logits = model(images)
        total_loss += float(F.cross_entropy(logits.float(), labels, reduction="sum"))
        correct += int((logits.argmax(1) == labels).sum())
        seen += len(labels)
    return total_loss / max(seen, 1), correct / max(seen, 1)
