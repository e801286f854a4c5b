"""A unit's window in the input, checked against hand numbers and a walk down the layers."""

from __future__ import annotations

import pytest

from model.architecture import Architecture, layer_table, paper_alexnet, torchvision_alexnet
from service.channel_patches import Box, Window
from service.numerics.shifts import layer_footprint


def walk_down(arch: Architecture, layer: str, index: int) -> tuple[int, int]:
    """Input pixels first..last that unit `index` (per axis) of `layer` depends on.

    Independent of the layer table's closed form: it goes back layer by layer with each
    layer's own kernel, stride and padding (unit i reads its input i*s - p .. i*s - p + k - 1).
    """
    first = last = index
    for spec in reversed(arch.layers[: arch.layer_names.index(layer) + 1]):
        if spec.kind == "lrn":
            continue
        first = first * spec.stride - spec.padding
        last = last * spec.stride - spec.padding + spec.kernel - 1
    return first, last


def test_conv1_unit_r_c_sees_rows_4r_to_4r_plus_10() -> None:
    conv1 = layer_footprint(layer_table(paper_alexnet(10)), "conv1")
    for r in range(55):
        window = Window.of_unit(conv1, r, 54 - r)
        assert (window.top, window.top + window.size - 1) == (4 * r, 4 * r + 10)
        assert (window.left, window.left + window.size - 1) == (4 * (54 - r), 4 * (54 - r) + 10)


def test_padded_layers_start_before_the_image_as_the_page_computes() -> None:
    layers = layer_table(paper_alexnet(10))
    # The page's test checks the same corner (tests/service/test_page.py: data-window -16,-16,51).
    assert Window.of_unit(layer_footprint(layers, "conv2"), 0, 0) == Window(-16, -16, 51)
    # conv2 pads 2 at jump 8, conv3-5 pad 1 each at jump 16.
    starts = [layer_footprint(layers, name).offset for name in ("conv3", "conv4", "conv5")]
    assert starts == [-32, -48, -64]


@pytest.mark.parametrize(
    "arch", [paper_alexnet(10), torchvision_alexnet(10)], ids=["paper", "torchvision"]
)
def test_every_unit_of_every_layer_matches_the_walk_down(arch: Architecture) -> None:
    rows = layer_table(arch)
    for row in rows:
        if row.type == "fc":
            continue
        footprint = layer_footprint(rows, row.name)
        for index in range(row.output_shape[1]):
            window = Window.of_unit(footprint, index, index)
            first, last = walk_down(arch, row.name, index)
            assert (window.top, window.top + window.size - 1) == (first, last), (row.name, index)
            assert (window.left, window.left + window.size - 1) == (first, last)


@pytest.mark.parametrize(
    ("window", "inside"),
    [
        (Window(-16, -16, 51), Box(0, 0, 35, 35)),
        (Window(200, 10, 51), Box(200, 10, 227, 61)),
        (Window(0, 0, 227), Box(0, 0, 227, 227)),
        (Window(-64, 128, 163), Box(0, 128, 99, 227)),
        (Window(227, 0, 11), None),
        (Window(-11, 0, 11), None),
    ],
)
def test_the_part_inside_the_image(window: Window, inside: Box | None) -> None:
    assert window.inside(227, 227) == inside
