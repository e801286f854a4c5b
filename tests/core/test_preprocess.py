"""Preprocessing: clear refusals, the fast paths against the plain formulas they replace, and
the input tensor back as its picture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.preprocess import (
    ImageDecodeError,
    PreprocessSpec,
    decode_image,
    input_pixels,
    normalise,
    preprocess_image,
    resize_and_crop,
)

SPEC = PreprocessSpec.for_input(227)
OLD_SPEC = SPEC.model_copy(update={"resample_region": None})  # a manifest from before


def formula(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """(x / 255 - mean) / std in float32, as `normalise` computed it before the table."""
    array = np.asarray(image, dtype=np.float32) * np.float32(1 / 255)
    mean = np.asarray(spec.mean, dtype=np.float32)
    inv_std = 1 / np.asarray(spec.std, dtype=np.float32)
    return np.ascontiguousarray(((array - mean) * inv_std).transpose(2, 0, 1))


@pytest.mark.parametrize(
    "spec",
    [SPEC, PreprocessSpec(mean=(0.5, 0.25, 0.0), std=(0.5, 1.0, 3.0))],
    ids=["imagenet", "other-statistics"],
)
def test_table_normalisation_is_bit_identical_to_the_formula(spec: PreprocessSpec) -> None:
    rng = np.random.default_rng(0)
    for shape in ((227, 227, 3), (31, 17, 3)):
        image = Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8))
        got = normalise(image, spec)
        assert got.dtype == np.float32 and got.flags.c_contiguous
        np.testing.assert_array_equal(got, formula(image, spec))
    every_level = Image.fromarray(np.repeat(np.arange(256, dtype=np.uint8), 3).reshape(16, 16, 3))
    np.testing.assert_array_equal(normalise(every_level, spec), formula(every_level, spec))
    np.testing.assert_array_equal(input_pixels(normalise(every_level, spec), spec), every_level)


def test_crop_region_resampling_is_within_one_level_of_resize_then_crop(
    photo_arrays: dict[str, np.ndarray],
) -> None:
    differing = compared = 0
    for name, array in photo_arrays.items():
        photo = Image.fromarray(array).convert("RGB")
        for size in (photo.size, (640, 480), (480, 640), (300, 1000)):
            image = photo.resize(size)
            region = np.asarray(resize_and_crop(image, SPEC), np.int16)
            whole = np.asarray(resize_and_crop(image, OLD_SPEC), np.int16)
            assert region.shape == whole.shape == (227, 227, 3), (name, size)
            assert np.max(np.abs(region - whole)) <= 1, (name, size)
            differing += int(np.count_nonzero(region != whole))
            compared += region.size
    # Measured: 0.17% in all; 0.01-0.03% at 640x480, 2.5% for rocket at its own 640x427, where
    # whole-image filter centres fall exactly half-way between two pixels and the region's
    # own centres (offset by the region's start) land a rounding error to either side.
    assert differing / compared < 5e-3


def test_a_manifest_without_the_field_keeps_resize_then_crop() -> None:
    rng = np.random.default_rng(1)
    image = Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    resized = image.resize((341, 256), Image.Resampling.BILINEAR)
    expected = resized.crop((57, 14, 57 + 227, 14 + 227))
    np.testing.assert_array_equal(np.asarray(resize_and_crop(image, OLD_SPEC)), expected)
    assert OLD_SPEC.model_dump(exclude_none=True).get("resample_region") is None


@pytest.mark.parametrize("size", [(256, 256), (227, 227), (100, 60), (256, 300)])
def test_small_and_exact_sizes_give_the_crop(size: tuple[int, int]) -> None:
    image = Image.new("RGB", size, (10, 200, 30))
    tensor = preprocess_image(image, SPEC)
    assert tensor.shape == (3, 227, 227)
    np.testing.assert_array_equal(input_pixels(tensor, SPEC)[100, 100], (10, 200, 30))


def test_an_unreadable_file_is_refused_without_python_internals() -> None:
    with pytest.raises(ImageDecodeError) as refused:
        decode_image(b"hello, world" * 10)
    message = str(refused.value)
    assert "not a format Pillow reads" in message
    assert "object at" not in message and "0x" not in message


def test_input_pixels_undo_the_normalisation() -> None:
    spec = PreprocessSpec()
    pixels = np.random.default_rng(4).integers(0, 256, (227, 227, 3), dtype=np.uint8)
    tensor = normalise(Image.fromarray(pixels), spec)
    assert tensor.shape == (3, 227, 227)
    np.testing.assert_array_equal(input_pixels(tensor, spec), pixels)
