"""Preprocessing helpers: clear refusals, and the input tensor back as its picture."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from core.preprocess import ImageDecodeError, PreprocessSpec, decode_image, input_pixels, normalise


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
