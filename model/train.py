"""`alexnet train`: train AlexNet on the shapes set or an ImageFolder, within a time budget.

Reads top to bottom like nanoGPT's train.py: data, model, optimiser, resume, the
epoch loop, checkpoints. `last.pt` is written after every epoch and `best.pt` whenever
the validation accuracy is the best so far; both carry what `alexnet export` and
`--resume` need.
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from core.errors import UserFacingError
from core.preprocess import PreprocessSpec
from model.architecture import build_architecture
from model.data.folder import LabelledImages, load_image_folder, stratified_split
from model.data.loader import ImageDataset, default_workers, epoch_loader
from model.data.shapes import SHAPE_CLASSES, generate_images
from model.network import AlexNet
from model.train_config import TrainConfig
from model.train_state import History, resume, save_epoch
from model.training_loop import (
    Clock,
    Precision,
    Schedule,
    evaluate,
    keep_freed_memory,
    train_epoch,
)


def load_data(config: TrainConfig, resize: int) -> LabelledImages:
    """The shapes set (drawn in memory) or an ImageFolder from disk."""
    if config.dataset == "shapes":
        images, labels = generate_images(config.per_class, size=config.image_size, seed=config.seed)
        return LabelledImages(list(SHAPE_CLASSES), list(images), labels, source="shapes")
    return load_image_folder(Path(config.dataset), resize=resize)


def choose_device(name: str) -> torch.device:
    """`auto` is CUDA when there is a GPU, else the CPU; asking for a missing GPU is an error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserFacingError("--device cuda was asked for, but torch sees no CUDA GPU")
    if name not in ("cpu", "cuda"):
        raise UserFacingError(f"unknown device {name!r}; choose auto, cpu or cuda")
    return torch.device(name)


def make_optimizer(config: TrainConfig, model: AlexNet) -> torch.optim.Optimizer:
    """SGD with momentum and weight decay as in the paper, or AdamW."""
    # The fused kernels take about a third less time for the update on a CPU.
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(),
            lr=config.peak_lr(),
            momentum=config.momentum,
            weight_decay=config.weight_decay,
            fused=True,
        )
    if config.optimizer == "adamw":
        return torch.optim.AdamW(
            model.parameters(), lr=config.peak_lr(), weight_decay=config.weight_decay, fused=True
        )
    raise UserFacingError(f"unknown optimizer {config.optimizer!r}; choose sgd or adamw")


def start_classifier_small(model: AlexNet) -> None:
    """Start the last layer near zero, so the first steps are not spent unlearning guesses.

    He initialisation suits the ReLU layers, but it gives the output layer logits of
    a few units, confident and random; at N(0, 0.01) the classes start nearly level.
    """
    last = model.layers[model.arch.layers[-1].name]
    assert isinstance(last, torch.nn.Linear)
    torch.nn.init.normal_(last.weight, std=0.01)
    torch.nn.init.zeros_(last.bias)


def train(config: TrainConfig) -> dict[str, Any]:
    """Run training as configured; returns the `training` metadata of the last checkpoint."""
    started = time.monotonic()
    deadline = started + config.max_minutes * 60 if config.max_minutes else None
    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = choose_device(config.device)
    keep_freed_memory()
    spec = PreprocessSpec.for_input(build_architecture(config.variant, 1).input_size)

    data = load_data(config, spec.resize)
    if data.skipped:
        tqdm.write(f"skipped {data.skipped} unreadable image(s) in {data.source}")
    train_idx, val_idx = stratified_split(data.labels, config.val_fraction, config.seed)
    tqdm.write(
        f"data: {data.source}, {len(data.classes)} classes, {len(train_idx)} training and "
        f"{len(val_idx)} validation images ({time.monotonic() - started:.1f} s)"
    )

    model = AlexNet(build_architecture(config.variant, len(data.classes)))
    start_classifier_small(model)
    model = model.to(device)
    optimizer = make_optimizer(config, model)
    steps_per_epoch = -(-len(train_idx) // config.batch_size)
    schedule = Schedule(
        optimizer, peak_lr=config.peak_lr(), total_steps=steps_per_epoch * config.epochs
    )
    first_epoch, history = 0, History()
    if config.resume is not None:
        first_epoch, history = resume(config.resume, model, optimizer, schedule, data.classes)
        tqdm.write(f"resumed from {config.resume} after epoch {first_epoch}")
    if first_epoch >= config.epochs:
        raise UserFacingError(
            f"nothing to do: {config.resume} has {first_epoch} epochs and --epochs is "
            f"{config.epochs}; ask for more epochs to continue it"
        )

    workers = default_workers(data) if config.workers is None else config.workers
    pin = device.type == "cuda"
    train_set = ImageDataset(data, train_idx, spec, train=True, seed=config.seed)
    val_set = ImageDataset(data, val_idx, spec, train=False)
    precision = Precision(device)
    # Until an epoch has been timed, keep a generous guess for validating and saving.
    clock = Clock(deadline, reserve=5.0 + 0.05 * len(val_idx), train_started=time.monotonic())
    facts = {
        "dataset": data.source,
        "variant": config.variant,
        "classes": len(data.classes),
        "num_train": len(train_idx),
        "num_val": len(val_idx),
        "skipped_images": data.skipped,
        "seed": config.seed,
        "optimizer": config.optimizer,
        "lr": config.peak_lr(),
        "momentum": config.momentum,
        "weight_decay": config.weight_decay,
        "batch_size": config.batch_size,
        "device": device.type,
    }
    metadata: dict[str, Any] = {}
    for epoch in range(first_epoch + 1, config.epochs + 1):
        loader = epoch_loader(
            train_set,
            batch_size=config.batch_size,
            epoch=epoch,
            shuffle=True,
            workers=workers,
            pin_memory=pin,
        )
        train_loss, train_acc, stopped = train_epoch(
            model, loader, optimizer, schedule, precision, clock, description=f"epoch {epoch}"
        )
        step_started = time.monotonic()
        val_loader = epoch_loader(
            val_set, batch_size=64, epoch=epoch, shuffle=False, workers=workers, pin_memory=pin
        )
        val_loss, val_acc = evaluate(model, val_loader, precision)
        best = history.record(epoch, val_acc, val_loss)
        out_of_time = stopped or clock.left() <= 0
        metadata = {
            **facts,
            "epochs": epoch,
            "train_loss": train_loss,
            "train_accuracy": train_acc,
            "val_loss": val_loss,
            "val_accuracy": val_acc,
            **history.as_dict(),
            "seconds": round(history.seconds + time.monotonic() - started, 1),
            "stopped_by_time_budget": stopped or (out_of_time and epoch < config.epochs),
        }
        save_epoch(
            config.out,
            model,
            labels=data.classes,
            epoch=epoch,
            training=metadata,
            optimizer=optimizer,
            schedule=schedule,
            best=best,
        )
        # Keep room for one more validation and save, with a margin for a busy machine.
        clock.reserve = 1.5 * (time.monotonic() - step_started) + 2.0
        tqdm.write(
            f"epoch {epoch}/{config.epochs}: train loss {train_loss:.3f} acc {train_acc:.1%}"
            f" | val loss {val_loss:.3f} acc {val_acc:.1%}{' (best)' if best else ''}"
            f" | {time.monotonic() - started:.0f} s"
        )
        if out_of_time and epoch < config.epochs:
            tqdm.write(f"stopping after epoch {epoch}: the {config.max_minutes} min budget is used")
            break
    return metadata
