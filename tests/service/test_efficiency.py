"""Efficiency figures: the DESIGN numbers exactly, and counts read off real matrices."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import signal

from service.numerics.efficiency import efficiency
from service.numerics.errors import InvalidArgument
from service.numerics.geometry import MODES, PADDINGS, Mode, Padding


def test_design_numbers_for_the_edge_kernel_on_320_by_280() -> None:
    outputs, inputs = 319 * 280, 320 * 280
    figures = efficiency((280, 320), (1, 2), padding="valid", mode="convolution")
    assert figures == {
        "convolution": {"stored_floats": 2, "float_ops": 267_960},
        "dense_matrix": {
            "stored_floats": 319 * 280 * 320 * 280,
            "float_ops": 2 * outputs * inputs - outputs,
        },
        "sparse_matrix": {"stored_floats": 178_640, "float_ops": 267_960},
    }
    assert figures["dense_matrix"]["stored_floats"] > 8e9
    assert figures["dense_matrix"]["float_ops"] == pytest.approx(
        2 * 319 * 280 * 320 * 280, rel=1e-4
    )
    for counts in figures.values():
        assert all(type(value) is int for value in counts.values())  # exact, JSON-friendly


def test_rgb_multiplies_the_work_not_the_storage() -> None:
    grey = efficiency((280, 320), (1, 2))
    rgb = efficiency((280, 320), (1, 2), channels=3)
    for name in grey:
        assert rgb[name]["stored_floats"] == grey[name]["stored_floats"]
        assert rgb[name]["float_ops"] == 3 * grey[name]["float_ops"]
    assert rgb["convolution"]["float_ops"] == 803_880


def operator_matrix(
    image_shape: tuple[int, int], kernel: np.ndarray, mode: Mode, padding: Padding, stride: int
) -> np.ndarray:
    """The (outputs x inputs) matrix of the convolution, column by column from unit impulses."""
    apply = signal.convolve2d if mode == "convolution" else signal.correlate2d
    columns = []
    for index in range(image_shape[0] * image_shape[1]):
        impulse = np.zeros(image_shape)
        impulse.flat[index] = 1.0
        columns.append(apply(impulse, kernel, mode=padding)[::stride, ::stride].ravel())
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel_shape", [(1, 2), (2, 1), (2, 2), (3, 3), (4, 3), (5, 2)])
def test_counts_match_the_real_matrix(
    kernel_shape: tuple[int, int], mode: Mode, padding: Padding, stride: int
) -> None:
    image_shape = (6, 7)
    # All-positive weights: no product cancels, so the matrix's nonzeros are exactly
    # the (output, input) pairs a kernel tap connects.
    kernel = np.random.default_rng(0).uniform(1, 2, kernel_shape)
    matrix = operator_matrix(image_shape, kernel, mode, padding, stride)
    taps_per_output = np.count_nonzero(matrix, axis=1)
    assert taps_per_output.min() >= 1
    sparse_ops = int(np.sum(2 * taps_per_output - 1))  # n multiplies, n - 1 adds per output
    figures = efficiency(image_shape, kernel_shape, padding=padding, mode=mode, stride=stride)
    assert figures == {
        "convolution": {"stored_floats": kernel.size, "float_ops": sparse_ops},
        "dense_matrix": {
            "stored_floats": matrix.size,
            "float_ops": matrix.shape[0] * (2 * matrix.shape[1] - 1),
        },
        "sparse_matrix": {"stored_floats": int(np.count_nonzero(matrix)), "float_ops": sparse_ops},
    }


@pytest.mark.parametrize("mode", MODES)
def test_image_inside_the_kernel_with_valid_padding(mode: Mode) -> None:
    kernel = np.random.default_rng(1).uniform(1, 2, (5, 4))
    matrix = operator_matrix((3, 2), kernel, mode, "valid", 1)
    figures = efficiency((3, 2), (5, 4), padding="valid", mode=mode)
    assert figures["sparse_matrix"]["stored_floats"] == np.count_nonzero(matrix) == matrix.size


def test_same_and_full_count_only_taps_inside_the_image() -> None:
    # 3x3 kernel on a 4x4 image, same: corner outputs see 4 taps, edges 6, inside 9.
    same = efficiency((4, 4), (3, 3), padding="same")
    assert same["sparse_matrix"]["stored_floats"] == 4 * 4 + 8 * 6 + 4 * 9 == 10 * 10
    full = efficiency((4, 4), (3, 3), padding="full")
    assert full["sparse_matrix"]["stored_floats"] == 16 * 9  # every pixel meets every tap once


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"padding": "circular"}, "padding must be one of"),
        ({"mode": "conv"}, "mode must be one of"),
        ({"stride": 0}, "stride must be"),
        ({"channels": 0}, "channels must be"),
        ({"kernel_shape": (0, 2)}, "kernel rows must be"),
        ({"input_shape": (4, -1)}, "image cols must be"),
        ({"kernel_shape": (6, 2)}, "does not fit"),
    ],
)
def test_rejects_bad_arguments(kwargs: dict[str, object], message: str) -> None:
    arguments: dict[str, object] = {"input_shape": (5, 5), "kernel_shape": (3, 3), **kwargs}
    with pytest.raises(InvalidArgument, match=message):
        efficiency(**arguments)  # type: ignore[arg-type]
