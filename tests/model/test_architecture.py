"""The architecture against the paper's numbers: shapes, parameters, receptive fields."""

from __future__ import annotations

import pytest
import torch

from model.architecture import (
    build_architecture,
    layer_table,
    paper_alexnet,
    parameter_count,
    torchvision_alexnet,
)
from model.network import AlexNet

PAPER_SHAPES = {
    "conv1": [96, 55, 55],
    "pool1": [96, 27, 27],
    "norm1": [96, 27, 27],
    "conv2": [256, 27, 27],
    "pool2": [256, 13, 13],
    "norm2": [256, 13, 13],
    "conv3": [384, 13, 13],
    "conv4": [384, 13, 13],
    "conv5": [256, 13, 13],
    "pool3": [256, 6, 6],
    "fc6": [4096],
    "fc7": [4096],
    "fc8": [1000],
}
# DESIGN.md: size / jump of the receptive field of each layer.
RECEPTIVE_FIELDS = {
    "conv1": (11, 4),
    "pool1": (19, 8),
    "norm1": (19, 8),
    "conv2": (51, 8),
    "pool2": (67, 16),
    "norm2": (67, 16),
    "conv3": (99, 16),
    "conv4": (131, 16),
    "conv5": (163, 16),
    "pool3": (195, 32),
}


def test_layer_order_matches_the_design() -> None:
    assert paper_alexnet().layer_names == list(PAPER_SHAPES)


def test_paper_parameter_count() -> None:
    assert parameter_count(paper_alexnet(1000)) == 60_965_224
    model = AlexNet(paper_alexnet(1000))
    assert sum(p.numel() for p in model.parameters()) == 60_965_224


def test_table_shapes_and_receptive_fields() -> None:
    rows = {row.name: row for row in layer_table(paper_alexnet(1000))}
    assert {name: row.output_shape for name, row in rows.items()} == PAPER_SHAPES
    for name, (size, jump) in RECEPTIVE_FIELDS.items():
        assert (rows[name].receptive_field, rows[name].jump) == (size, jump), name
    assert rows["conv1"].multiply_adds == 96 * 55 * 55 * 3 * 11 * 11
    # The two-GPU split: conv2 sees 48 of conv1's 96 maps.
    assert rows["conv2"].parameters == 256 * 48 * 5 * 5 + 256


def test_pytorch_shapes_agree_with_the_table() -> None:
    arch = paper_alexnet(10)
    model = AlexNet(arch).eval()
    with torch.no_grad():
        outputs = model.forward_all(torch.zeros(2, 3, 227, 227))
    for row in layer_table(arch):
        assert list(outputs[row.name].shape) == [2, *row.output_shape], row.name


def test_conv_activations_are_after_relu() -> None:
    model = AlexNet(paper_alexnet(10)).eval()
    with torch.no_grad():
        outputs = model.forward_all(torch.randn(1, 3, 227, 227))
    for name in ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"):
        assert outputs[name].min() >= 0, name
    assert outputs["fc8"].min() < 0  # logits keep their sign


def test_lrn_uses_the_paper_formula() -> None:
    """b = a / (k + alpha * sum a^2)^beta with the paper's k, n, alpha, beta."""
    arch = paper_alexnet(10)
    spec = next(layer for layer in arch.layers if layer.kind == "lrn")
    a = torch.rand(1, 8, 3, 3) * 50
    padded = torch.nn.functional.pad(a.pow(2), (0, 0, 0, 0, 2, 2))
    sums = torch.stack([padded[:, c : c + 5].sum(1) for c in range(8)], 1)
    expected = a / (2 + 1e-4 * sums) ** 0.75
    got = torch.nn.functional.local_response_norm(
        a, spec.lrn_size, spec.lrn_alpha_per_size, spec.lrn_beta, spec.lrn_k
    )
    torch.testing.assert_close(got, expected)


def test_torchvision_variant_table() -> None:
    rows = {row.name: row for row in layer_table(torchvision_alexnet(1000))}
    assert rows["conv1"].output_shape == [64, 55, 55]
    assert rows["pool3"].output_shape == [256, 6, 6]
    assert parameter_count(torchvision_alexnet(1000)) == 61_100_840
    assert "norm1" not in rows


def test_unknown_variant_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="choose one of"):
        build_architecture("vgg", 10)
