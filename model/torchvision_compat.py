"""Load torchvision's ImageNet AlexNet weights (`alexnet-owt-*.pth`) into our named layers."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import torch

from core.errors import UserFacingError
from model.architecture import torchvision_alexnet
from model.checkpoint import load_state
from model.network import AlexNet

# torchvision's nn.Sequential indices for each of our named layers.
TORCHVISION_KEYS = {
    "features.0": "conv1",
    "features.3": "conv2",
    "features.6": "conv3",
    "features.8": "conv4",
    "features.10": "conv5",
    "classifier.1": "fc6",
    "classifier.4": "fc7",
    "classifier.6": "fc8",
}


def rename_torchvision_keys(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """torchvision's keys (`features.0.weight`) to ours (`layers.conv1.weight`)."""
    renamed = {}
    for key, tensor in state.items():
        prefix, _, leaf = key.rpartition(".")
        if prefix not in TORCHVISION_KEYS:
            raise UserFacingError(f"{key!r} is not a key of torchvision's AlexNet")
        renamed[f"layers.{TORCHVISION_KEYS[prefix]}.{leaf}"] = tensor
    return renamed


def imagenet_labels() -> list[str]:
    """The 1000 ImageNet class names in torchvision's index order (shipped with the package)."""
    text = resources.files("model").joinpath("imagenet_classes.txt").read_text(encoding="utf-8")
    return [line.strip() for line in text.splitlines() if line.strip()]


def load_torchvision_model(path: Path) -> AlexNet:
    """Our `torchvision` variant with the weights of a torchvision state-dict file."""
    if not path.is_file():
        raise UserFacingError(f"weights file {path} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise UserFacingError(f"weights file {path} cannot be read: {exc}") from None
    if not isinstance(state, dict):
        raise UserFacingError(f"{path} is not a state dict")
    num_classes = (
        int(state["classifier.6.weight"].shape[0]) if "classifier.6.weight" in state else 1000
    )
    model = AlexNet(torchvision_alexnet(num_classes))
    load_state(model, rename_torchvision_keys(state), source=str(path))
    return model.eval()
