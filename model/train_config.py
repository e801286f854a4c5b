"""The options of a training run and their defaults (torch-free, so `--help` stays fast).

`alexnet train` takes its options from this class: each field is a `--flag` with
its description as the help text, so the command line cannot drift from the run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class TrainConfig(BaseModel):
    """Train AlexNet from scratch and write OUT/last.pt after every epoch and OUT/best.pt for the
    best validation accuracy. With no options it draws the 10-class `shapes` set and trains the
    paper's AlexNet for at most 5.5 minutes on a CPU (mixed precision on a CUDA GPU). The
    learning rate warms up, then decays on a cosine over the planned steps or the time budget,
    whichever ends first."""

    model_config = ConfigDict(extra="forbid")

    dataset: str = Field(
        "shapes",
        description="`shapes` (drawn procedurally, nothing downloaded) or the path of an "
        "ImageFolder: one sub-folder of JPEG/PNG images per class",
    )
    per_class: int = Field(
        150, ge=1, description="shapes only: images drawn per class (train + validation)"
    )
    image_size: int = Field(256, ge=1, description="shapes only: side of the drawn images")
    val_fraction: float = Field(
        0.2, gt=0, lt=1, description="share of every class held out for validation"
    )
    workers: int | None = Field(
        None,
        ge=0,
        description="data loader processes; unset: 0 for images held in memory, else half "
        "the cores",
    )
    variant: Literal["paper", "torchvision"] = Field(
        "paper",
        description="`paper`: Krizhevsky et al. 2012 with LRN and the two-GPU groups, 227x227 "
        "input; `torchvision`: the single-GPU 224x224 variant",
    )
    epochs: int = Field(4, ge=1, description="epochs in all, counting a resumed checkpoint's")
    batch_size: int = Field(16, ge=1, description="images per step")
    optimizer: Literal["sgd", "adamw"] = Field(
        "sgd", description="SGD with momentum as in the paper, or AdamW"
    )
    lr: float | None = Field(
        None, gt=0, description="peak learning rate; unset: 0.01 for sgd, 2e-4 for adamw"
    )
    momentum: float = Field(0.9, ge=0, description="SGD momentum (the paper's)")
    weight_decay: float = Field(5e-4, ge=0, description="weight decay (the paper's)")
    seed: int = Field(0, description="seed of the data, the split, the weights and the order")
    max_minutes: float = Field(
        5.5,
        ge=0,
        description="wall-clock budget for the whole run, data included; training stops "
        "cleanly when it is used up and keeps the best checkpoint (0: no budget)",
    )
    out: Path = Field(Path("checkpoints"), description="folder for last.pt and best.pt")
    resume: Path | None = Field(
        None,
        description="continue a run from its checkpoint (weights, optimiser, schedule, epoch) "
        "up to --epochs",
    )
    device: Literal["auto", "cpu", "cuda"] = Field(
        "auto", description="`auto`: a CUDA GPU when torch sees one, else the CPU"
    )

    def peak_lr(self) -> float:
        return self.lr if self.lr is not None else (0.01 if self.optimizer == "sgd" else 2e-4)
