"""The pictures: arrays as PNGs (scaled min to 0, max to 255), grids of maps and filters."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.numerics.errors import InvalidArgument
from service.pictures import array_png, feature_grid_png, filters_png, to_uint8


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
