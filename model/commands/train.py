"""`alexnet train`: train on the procedural shapes set or an ImageFolder, within a time budget."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

from model.train_config import DEFAULTS


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be greater than 0, not {value}")
    return value


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train AlexNet (default: the procedural shapes set, about 5 minutes on a CPU)",
        description="Train AlexNet from scratch and write OUT/last.pt after every epoch and "
        "OUT/best.pt for the best validation accuracy. With no options it draws the 10-class "
        "`shapes` set and trains the paper's AlexNet for at most 5.5 minutes on a CPU "
        "(mixed precision on a CUDA GPU). The learning rate warms up, then decays on a cosine "
        "over the planned steps or the time budget, whichever ends first.",
    )
    data = parser.add_argument_group("data")
    data.add_argument(
        "--dataset",
        default=DEFAULTS.dataset,
        help="`shapes` (drawn procedurally, nothing downloaded) or the path of an "
        "ImageFolder: one sub-folder of JPEG/PNG images per class (default: %(default)s)",
    )
    data.add_argument(
        "--per-class",
        type=_positive_int,
        default=DEFAULTS.per_class,
        help="shapes only: images drawn per class (train + validation) (default: %(default)s)",
    )
    data.add_argument(
        "--image-size",
        type=_positive_int,
        default=DEFAULTS.image_size,
        help="shapes only: side in pixels of the drawn images (default: %(default)s)",
    )
    data.add_argument(
        "--val-fraction",
        type=float,
        default=DEFAULTS.val_fraction,
        help="share of every class held out for validation (default: %(default)s)",
    )
    data.add_argument(
        "--workers",
        type=int,
        default=None,
        help="data loader processes (default: 0 for images held in memory, else half the cores)",
    )
    model = parser.add_argument_group("model and optimiser")
    model.add_argument(
        "--variant",
        choices=("paper", "torchvision"),
        default=DEFAULTS.variant,
        help="`paper`: Krizhevsky et al. 2012 with LRN and the two-GPU groups, "
        "227x227 input; `torchvision`: the single-GPU 224x224 variant (default: %(default)s)",
    )
    model.add_argument(
        "--epochs",
        type=_positive_int,
        default=DEFAULTS.epochs,
        help="epochs in all, counting a resumed checkpoint's (default: %(default)s)",
    )
    model.add_argument(
        "--batch-size",
        type=_positive_int,
        default=DEFAULTS.batch_size,
        help="images per step (default: %(default)s)",
    )
    model.add_argument(
        "--optimizer",
        choices=("sgd", "adamw"),
        default=DEFAULTS.optimizer,
        help="SGD with momentum as in the paper, or AdamW (default: %(default)s)",
    )
    model.add_argument(
        "--lr",
        type=_positive_float,
        default=None,
        help="peak learning rate (default: 0.01 for sgd, 2e-4 for adamw)",
    )
    model.add_argument(
        "--momentum",
        type=float,
        default=DEFAULTS.momentum,
        help="SGD momentum (default: the paper's %(default)s)",
    )
    model.add_argument(
        "--weight-decay",
        type=float,
        default=DEFAULTS.weight_decay,
        help="weight decay (default: the paper's %(default)s)",
    )
    model.add_argument(
        "--seed",
        type=int,
        default=DEFAULTS.seed,
        help="seed of the data, the split, the weights and the order (default: %(default)s)",
    )
    run_group = parser.add_argument_group("run")
    run_group.add_argument(
        "--max-minutes",
        type=float,
        default=DEFAULTS.max_minutes,
        help="wall-clock budget for the whole run, data included; training "
        "stops cleanly when it is used up and keeps the best checkpoint "
        "(0: no budget) (default: %(default)s)",
    )
    run_group.add_argument(
        "--out",
        type=Path,
        default=DEFAULTS.out,
        help="folder for last.pt and best.pt (default: %(default)s)",
    )
    run_group.add_argument(
        "--resume",
        type=Path,
        metavar="CHECKPOINT",
        help="continue a run from its checkpoint (weights, optimiser, "
        "schedule, epoch) up to --epochs",
    )
    run_group.add_argument(
        "--device",
        choices=("auto", "cpu", "cuda"),
        default=DEFAULTS.device,
        help="`auto`: a CUDA GPU when torch sees one, else the CPU (default: %(default)s)",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from model.train import train
    from model.train_config import TrainConfig

    config = TrainConfig(
        dataset=args.dataset,
        variant=args.variant,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        momentum=args.momentum,
        weight_decay=args.weight_decay,
        optimizer=args.optimizer,
        seed=args.seed,
        max_minutes=args.max_minutes or None,
        out=args.out,
        resume=args.resume,
        device=args.device,
        per_class=args.per_class,
        image_size=args.image_size,
        val_fraction=args.val_fraction,
        workers=args.workers,
    )
    started = time.monotonic()
    result = train(config)
    print(
        f"done: {result['epochs']} epochs, val accuracy {result['val_accuracy']:.1%} "
        f"(best {result['best_val_accuracy']:.1%} at epoch {result['best_epoch']}), "
        f"{time.monotonic() - started:.0f} s; wrote {config.out / 'last.pt'} and "
        f"{config.out / 'best.pt'}"
    )
    return 0
