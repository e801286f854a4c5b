"""The torchvision variant loads a torchvision AlexNet state dict into our named layers."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from core.errors import UserFacingError
from model.torchvision_compat import imagenet_labels, load_torchvision_model


def torchvision_layout(num_classes: int = 1000) -> nn.Module:
    """torchvision's AlexNet, written out by hand: its keys and shapes are what matter."""
    model = nn.Module()
    model.features = nn.Sequential(
        nn.Conv2d(3, 64, 11, 4, 2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(64, 192, 5, padding=2),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
        nn.Conv2d(192, 384, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(384, 256, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(256, 256, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(3, 2),
    )
    model.classifier = nn.Sequential(
        nn.Dropout(),
        nn.Linear(256 * 6 * 6, 4096),
        nn.ReLU(),
        nn.Dropout(),
        nn.Linear(4096, 4096),
        nn.ReLU(),
        nn.Linear(4096, num_classes),
    )
    return model


def test_same_logits_as_the_weights_placed_by_hand(tmp_path: Path) -> None:
    torch.manual_seed(3)
    reference = torchvision_layout().eval()
    path = tmp_path / "alexnet-owt-test.pth"
    torch.save(reference.state_dict(), path)
    ours = load_torchvision_model(path)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        expected = reference.classifier(torch.flatten(reference.features(x), 1))
        got = ours(x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_wrong_state_dict_is_a_clear_error(tmp_path: Path) -> None:
    state = torchvision_layout().state_dict()
    state["features.3.weight"] = torch.zeros(10, 64, 5, 5)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(UserFacingError, match=r"features|conv2"):
        load_torchvision_model(path)


def test_imagenet_labels_ship_with_the_package() -> None:
    labels = imagenet_labels()
    assert len(labels) == 1000
    assert labels[0] == "tench" and labels[281] == "tabby" and labels[999] == "toilet tissue"
