"""Training checkpoints: a dict that carries everything needed to rebuild the model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from core.errors import UserFacingError
from model.architecture import build_architecture
from model.network import AlexNet

FORMAT = "alexnet-checkpoint/1"


def checkpoint_dict(
    model: AlexNet,
    *,
    labels: list[str],
    epoch: int,
    training: dict[str, Any],
    optimizer: torch.optim.Optimizer | None = None,
    scheduler: Any = None,
) -> dict[str, Any]:
    """The checkpoint of `model`: its weights, its architecture's arguments, its labels."""
    return {
        "format": FORMAT,
        "variant": model.arch.variant,
        "num_classes": model.num_classes,
        "labels": list(labels),
        "model": model.state_dict(),
        "epoch": epoch,
        "training": training,  # dataset, epochs, accuracy, seconds, seed, optimiser...
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
    }


def save_checkpoint(path: Path, checkpoint: dict[str, Any]) -> None:
    """Write atomically, so an interrupted run never leaves a half-written file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(path.suffix + ".partial")
    torch.save(checkpoint, partial)
    partial.replace(path)


def read_checkpoint(path: Path) -> dict[str, Any]:
    """The raw checkpoint dict, or a one-line error if the file is not one of ours."""
    if not path.is_file():
        raise UserFacingError(f"checkpoint {path} does not exist")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserFacingError(f"checkpoint {path} cannot be read: {exc}") from None
    if not isinstance(checkpoint, dict) or checkpoint.get("format") != FORMAT:
        raise UserFacingError(f"{path} is not an alexnet checkpoint (format {FORMAT})")
    return checkpoint


def load_model(path: Path) -> tuple[AlexNet, dict[str, Any]]:
    """Rebuild the model a checkpoint describes and load its weights."""
    checkpoint = read_checkpoint(path)
    try:
        arch = build_architecture(checkpoint["variant"], int(checkpoint["num_classes"]))
    except ValueError as exc:
        raise UserFacingError(f"checkpoint {path}: {exc}") from None
    model = AlexNet(arch)
    load_state(model, checkpoint["model"], source=str(path))
    model.eval()
    return model, checkpoint


def load_state(model: AlexNet, state: dict[str, torch.Tensor], *, source: str) -> None:
    """Load weights, turning a shape or key mismatch into one clear line."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        details = []
        if missing:
            details.append(f"missing {missing[:3]}")
        if unexpected:
            details.append(f"unexpected {unexpected[:3]}")
        if wrong:
            key = wrong[0]
            details.append(
                f"{key} has shape {tuple(state[key].shape)}, the "
                f"{model.arch.variant} architecture needs {tuple(expected[key].shape)}"
            )
        raise UserFacingError(
            f"{source} does not fit the {model.arch.variant} AlexNet: " + "; ".join(details)
        )
    model.load_state_dict(state)
