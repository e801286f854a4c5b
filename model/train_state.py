"""What a training run keeps between epochs and between runs: its history and checkpoints."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from core.errors import UserFacingError
from model.checkpoint import checkpoint_dict, load_state, read_checkpoint, save_checkpoint
from model.network import AlexNet
from model.training_loop import Schedule


@dataclass
class History:
    """The best validation result so far and the seconds spent by earlier runs."""

    best_val_accuracy: float = -1.0
    best_val_loss: float = math.inf
    best_epoch: int = 0
    seconds: float = 0.0

    def record(self, epoch: int, val_accuracy: float, val_loss: float) -> bool:
        """Note an epoch's validation result; True if it is the best so far.

        Ties in accuracy (common at 100% on easy data) go to the lower loss.
        """
        if (val_accuracy, -val_loss) <= (self.best_val_accuracy, -self.best_val_loss):
            return False
        self.best_val_accuracy, self.best_val_loss, self.best_epoch = (
            val_accuracy,
            val_loss,
            epoch,
        )
        return True

    def as_dict(self) -> dict[str, Any]:
        return {
            "best_val_accuracy": self.best_val_accuracy,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
        }


def save_epoch(
    out: Path,
    model: AlexNet,
    *,
    labels: list[str],
    epoch: int,
    training: dict[str, Any],
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    best: bool,
) -> None:
    """Write `out/last.pt`, and make `out/best.pt` the same checkpoint if `best`."""
    checkpoint = checkpoint_dict(
        model,
        labels=labels,
        epoch=epoch,
        training=training,
        optimizer=optimizer,
        scheduler=schedule,
    )
    save_checkpoint(out / "last.pt", checkpoint)
    if best:
        _link_or_copy(out / "last.pt", out / "best.pt")


def _link_or_copy(source: Path, target: Path) -> None:
    """Make `target` the same file as `source` without writing half a gigabyte again.

    A hard link is safe: the next `last.pt` is written to a new file and renamed over
    the old name, so `best.pt` keeps the old contents.
    """
    partial = target.with_suffix(target.suffix + ".partial")
    partial.unlink(missing_ok=True)
    try:
        os.link(source, partial)
    except OSError:  # a file system without hard links
        partial.write_bytes(source.read_bytes())
    partial.replace(target)


def resume(
    path: Path,
    model: AlexNet,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule,
    classes: list[str],
) -> tuple[int, History]:
    """Load a checkpoint's weights, optimiser and schedule; (its epoch, its history)."""
    checkpoint = read_checkpoint(path)
    # A checkpoint of another architecture fails here with one line naming the mismatch.
    load_state(model, checkpoint["model"], source=str(path))
    if list(checkpoint["labels"]) != classes:
        raise UserFacingError(
            f"{path} was trained on the classes {_names(checkpoint['labels'])}, "
            f"but this data set has {_names(classes)}"
        )
    if checkpoint.get("optimizer") is not None:
        try:
            optimizer.load_state_dict(checkpoint["optimizer"])
        except (ValueError, KeyError) as exc:
            raise UserFacingError(f"{path}: its optimizer state does not fit: {exc}") from None
    if checkpoint.get("scheduler") is not None:
        schedule.load_state_dict(checkpoint["scheduler"])
    training = checkpoint.get("training") or {}
    history = History(
        best_val_accuracy=float(training.get("best_val_accuracy", -1.0)),
        best_val_loss=float(training.get("best_val_loss", math.inf)),
        best_epoch=int(training.get("best_epoch", 0)),
        seconds=float(training.get("seconds", 0.0)),
    )
    return int(checkpoint["epoch"]), history


def _names(labels: list[str]) -> str:
    shown = ", ".join(labels[:4])
    return f"[{shown}{', ...' if len(labels) > 4 else ''}] ({len(labels)})"
