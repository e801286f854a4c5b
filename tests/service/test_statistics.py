"""summarise, top_channels and the PNG pictures, against numpy and Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from service.numerics import statistics
from service.numerics.errors import InvalidArgument
from service.numerics.statistics import summarise, to_png_bytes, to_uint8, top_channels


def expected_summary(array: np.ndarray) -> dict[str, float]:
    values = np.asarray(array, dtype=np.float64)
    return {
        "mean": float(values.mean()),
        "std": float(values.std()),
        "min": float(values.min()),
        "max": float(values.max()),
        "sparsity": float(np.mean(values == 0)),
    }


def assert_summary(actual: dict[str, float], expected: dict[str, float]) -> None:
    assert set(actual) == {"mean", "std", "min", "max", "sparsity"}
    assert all(type(value) is float for value in actual.values())
    for key, value in expected.items():
        assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-12), key


def relu_like(shape: tuple[int, ...], seed: int = 0) -> np.ndarray:
    """Float32 activations after ReLU: about half exact zeros."""
    return np.maximum(np.random.default_rng(seed).standard_normal(shape), 0).astype(np.float32)


def test_summary_of_a_relu_activation() -> None:
    activation = relu_like((96, 55, 55))
    summary = summarise(activation)
    assert_summary(summary, expected_summary(activation))
    assert 0.45 < summary["sparsity"] < 0.55


def test_summary_merges_chunks_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statistics, "_CHUNK", 7)  # many uneven chunks, one short at the end
    values = np.random.default_rng(1).standard_normal(1000) * 3 + 1e4  # big mean, small spread
    values[::9] = 0.0
    assert_summary(summarise(values), expected_summary(values))


def test_summary_of_views_ints_and_single_values() -> None:
    grid = np.arange(60, dtype=np.float32).reshape(6, 10)
    assert_summary(summarise(grid.T[::2]), expected_summary(grid.T[::2]))
    assert_summary(summarise(np.array([0, 0, 3, 5])), expected_summary(np.array([0, 0, 3, 5])))
    assert summarise(np.float32(2.5)) == {
        "mean": 2.5,
        "std": 0.0,
        "min": 2.5,
        "max": 2.5,
        "sparsity": 0.0,
    }


def test_summary_of_nothing_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="empty"):
        summarise(np.zeros((3, 0)))


def test_top_channels_rank_by_mean() -> None:
    activation = np.zeros((5, 2, 2), np.float32)
    activation[3] = 4.0
    activation[1] = [[1.0, 3.0], [0.0, 0.0]]  # mean 1
    activation[4] = 1.0  # ties with channel 1: the lower index first
    activation[0] = -1.0
    assert top_channels(activation, 3) == [
        {"channel": 3, "mean": 4.0},
        {"channel": 1, "mean": 1.0},
        {"channel": 4, "mean": 1.0},
    ]
    ranked = top_channels(activation, 10)
    assert [entry["channel"] for entry in ranked] == [3, 1, 4, 2, 0]
    assert top_channels(activation, 0) == []


def test_top_channels_of_a_vector_and_against_numpy() -> None:
    vector = np.array([0.5, 2.0, -1.0, 7.0], np.float32)
    assert top_channels(vector, 2) == [{"channel": 3, "mean": 7.0}, {"channel": 1, "mean": 2.0}]
    activation = relu_like((64, 6, 6), seed=2)
    means = activation.astype(np.float64).mean(axis=(1, 2))
    top = top_channels(activation, 5)
    assert [entry["channel"] for entry in top] == list(np.argsort(-means)[:5])
    assert [entry["mean"] for entry in top] == pytest.approx(sorted(means, reverse=True)[:5])
    assert all(type(entry["channel"]) is int and type(entry["mean"]) is float for entry in top)


@pytest.mark.parametrize(("shape", "k"), [((2, 3), 1), ((2, 3, 4, 5), 1), ((0,), 1), ((3,), -1)])
def test_top_channels_rejects_bad_input(shape: tuple[int, ...], k: int) -> None:
    with pytest.raises(InvalidArgument):
        top_channels(np.ones(shape), k)


def decode(png: bytes) -> Image.Image:
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    image = Image.open(io.BytesIO(png))
    image.load()
    return image


def test_grey_png_round_trip_spans_0_to_255() -> None:
    array = np.random.default_rng(3).uniform(-5, 7, (28, 32)).astype(np.float32)
    image = decode(to_png_bytes(array))
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
    image = decode(to_png_bytes(array))
    assert image.mode == "RGB"
    assert image.size == (5, 4)
    pixels = np.asarray(image)
    assert pixels.shape == (4, 5, 3)
    assert tuple(pixels[0, 0]) == (255, 128, 0)
    assert pixels[1:].max() == 0


@pytest.mark.parametrize("value", [0.0, 7.5])
def test_a_constant_array_is_drawn_black(value: float) -> None:
    pixels = np.asarray(decode(to_png_bytes(np.full((3, 6), value, np.float32))))
    assert pixels.shape == (3, 6) and not pixels.any()


def test_a_single_channel_stack_is_grey() -> None:
    assert decode(to_png_bytes(np.arange(12.0).reshape(1, 3, 4))).mode == "L"


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
        to_png_bytes(array)


def test_extreme_values_do_not_overflow() -> None:
    np.testing.assert_array_equal(to_uint8(np.array([-3e38, 0.0, 3e38], np.float32)), [0, 128, 255])
