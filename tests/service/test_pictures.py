"""The pictures: arrays as PNGs (scaled min to 0, max to 255), grids of maps and filters."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.numerics.errors import InvalidArgument
from service.pictures import (
    GAP,
    LABEL_HEIGHT,
    ShiftPanels,
    array_png,
    feature_grid_png,
    filters_png,
    fraction_bars_png,
    shift_comparison_png,
    to_uint8,
)


def decode(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_grey_png_round_trip_spans_0_to_255() -> None:
    array = np.random.default_rng(3).uniform(-5, 7, (28, 32)).astype(np.float32)
    image = decode(array_png(array))
    assert image.mode == "L"
    assert image.size == (32, 28)  # Pillow says (width, height)
    pixels = np.asarray(image)
    assert pixels.min() == 0 and pixels.max() == 255
    expected = np.rint((array.astype(np.float64) - array.min()) / np.ptp(array) * 255)
    assert np.abs(pixels.astype(int) - expected).max() <= 1


def test_linear_scaling_by_hand() -> None:
    np.testing.assert_array_equal(to_uint8(np.array([[-2.0, 0.0, 2.0, 8.0]])), [[0, 51, 102, 255]])


def test_rgb_png_is_scaled_jointly_across_channels() -> None:
    array = np.zeros((3, 4, 5), np.float32)
    array[0, 0, 0] = 1.0  # red reaches the global max
    array[1, 0, 0] = 0.5  # green only half way: it must stay half as bright
    image = decode(array_png(array))
    assert image.mode == "RGB"
    assert image.size == (5, 4)
    pixels = np.asarray(image)
    assert pixels.shape == (4, 5, 3)
    assert tuple(pixels[0, 0]) == (255, 128, 0)
    assert pixels[1:].max() == 0


@pytest.mark.parametrize("value", [0.0, 7.5])
def test_a_constant_array_is_drawn_black(value: float) -> None:
    pixels = np.asarray(decode(array_png(np.full((3, 6), value, np.float32))))
    assert pixels.shape == (3, 6) and not pixels.any()


def test_a_single_channel_stack_is_grey() -> None:
    assert decode(array_png(np.arange(12.0).reshape(1, 3, 4))).mode == "L"


@pytest.mark.parametrize(
    ("array", "message"),
    [
        (np.ones((4, 3, 3)), "2-D or"),
        (np.ones(5), "2-D or"),
        (np.zeros((0, 3)), "2-D or"),
        (np.array([[1.0, np.nan]]), "NaN or infinity"),
        (np.array([[1.0, np.inf]]), "NaN or infinity"),
    ],
)
def test_png_rejects_what_it_cannot_draw(array: np.ndarray, message: str) -> None:
    with pytest.raises(InvalidArgument, match=message):
        array_png(array)


def test_extreme_values_do_not_overflow() -> None:
    np.testing.assert_array_equal(to_uint8(np.array([-3e38, 0.0, 3e38], np.float32)), [0, 128, 255])


def test_feature_grid_labels_every_chosen_channel_and_scales_each_map() -> None:
    activation = np.zeros((4, 5, 5), np.float32)
    activation[1] = np.arange(25).reshape(5, 5)  # a ramp: spans 0..255 on its own
    activation[3] = 1000.0  # constant: black, however large
    image = decode(feature_grid_png(activation, [1, 3]))
    assert image.mode == "L"
    pixels = np.asarray(image)
    assert pixels.max() == 255  # channel 1 reaches white although channel 3 is larger


def test_fc_vector_is_one_square_map() -> None:
    image = decode(feature_grid_png(np.arange(10, dtype=np.float32), []))
    assert image.size == (256, 256)


def test_filters_are_rgb_tiles_each_scaled_on_its_own() -> None:
    weights = np.zeros((3, 3, 2, 2), np.float32)
    weights[0, 0] = 1.0  # pure red filter
    weights[1] = -5.0
    weights[1, 2, 0, 0] = 5.0  # one blue pixel
    image = decode(filters_png(weights))
    assert image.mode == "RGB"
    colours = {tuple(c) for c in np.asarray(image).reshape(-1, 3)}
    assert {(255, 0, 0), (0, 0, 255)} <= colours


def test_a_value_range_shares_one_scale() -> None:
    np.testing.assert_array_equal(to_uint8(np.array([1.0, 2.0]), (0.0, 4.0)), [64, 128])
    np.testing.assert_array_equal(to_uint8(np.array([-1.0, 9.0]), (0.0, 4.0)), [0, 255])
    assert not to_uint8(np.array([1.0, 2.0]), (3.0, 3.0)).any()


def test_shift_comparison_draws_maps_alike_and_colours_the_difference() -> None:
    # One row; the difference's scale is the largest difference (19), drawn white.
    moved = np.arange(20, dtype=np.float32).reshape(4, 5)
    kinds = np.full((4, 5), 2, np.int8)
    kinds[:, 0] = 0  # no counterpart
    kinds[0, 1:] = 1  # border
    shifted = moved.copy()
    shifted[0, 2] += 19.0  # a border difference as large as the maps' range
    labels = ("moved", "shifted", "difference")
    image = decode(shift_comparison_png([ShiftPanels(moved, shifted, kinds, labels)]))
    assert image.mode == "RGB"
    pixels = np.asarray(image)
    # Three cells side by side, each the 5x4 map enlarged 33 times (165 px cells).
    zoom = 33
    cells = [
        pixels[GAP + LABEL_HEIGHT :, GAP + c * (5 * zoom + GAP) :][
            : 4 * zoom : zoom, : 5 * zoom : zoom
        ]
        for c in range(3)
    ]
    assert cells[0].shape == (4, 5, 3)
    # The moved map: grey, lowest black, ...
    assert tuple(cells[0][0, 0]) == (0, 0, 0) and (cells[0][..., 0] == cells[0][..., 2]).all()
    # ... on the same scale as the shifted map, where equal values look equal.
    np.testing.assert_array_equal(cells[0][1:], cells[1][1:])
    difference = cells[2].astype(int)
    assert tuple(difference[1, 1]) == (0, 0, 0)  # interior, equal: black
    assert tuple(difference[0, 1]) == (80, 0, 0)  # border, equal: dark red
    assert tuple(difference[1, 0]) == (0, 0, 110)  # no counterpart: dark blue
    assert tuple(difference[0, 2]) == (255, 255, 255)  # border, the largest difference


def test_fraction_bars_are_as_tall_as_the_fractions() -> None:
    image = decode(fraction_bars_png(["1", "2"], [("a", [1.0, 0.5]), ("b", [0.0, 0.25])], "t"))
    assert image.mode == "RGB"
    pixels = np.asarray(image)
    # The first series' colour fills a column as tall as the chart for 1.0, half for 0.5.
    grey = (pixels == np.array([150, 150, 150], np.uint8)).all(axis=2)
    heights = sorted(int(h) for h in grey.sum(axis=0) if h > 0)
    assert heights[-1] >= 200 and any(99 <= h <= 103 for h in heights)


def test_fraction_bars_need_groups_and_series() -> None:
    with pytest.raises(InvalidArgument):
        fraction_bars_png([], [("a", [])], "t")
