"""The options of a training run and their defaults (torch-free, so `--help` stays fast)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass
class TrainConfig:
    """Everything a run depends on; the defaults are the CPU demo run."""

    dataset: str = "shapes"  # "shapes", or the path of an ImageFolder
    variant: str = "paper"
    epochs: int = 4
    batch_size: int = 16
    lr: float | None = None  # None: 0.01 for SGD, 2e-4 for AdamW
    momentum: float = 0.9
    weight_decay: float = 5e-4
    optimizer: str = "sgd"
    seed: int = 0
    max_minutes: float | None = 5.5
    out: Path = Path("checkpoints")
    resume: Path | None = None
    device: str = "auto"
    per_class: int = 150  # shapes only: images generated per class
    image_size: int = 256  # shapes only: side of the generated images
    val_fraction: float = 0.2
    workers: int | None = None  # None: chosen from the data and the cores

    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else (0.01 if self.optimizer == "sgd" else 2e-4)


DEFAULTS = TrainConfig()
