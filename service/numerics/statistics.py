"""Summaries and pictures of arrays: convolution and pooling results, layer activations.

`summarise` reads the array once, in chunks of a million values, merging each
chunk's float64 mean and squared deviations (Chan et al.'s parallel formula), so
results are exact to float64 rounding and memory stays bounded for any size.
`std` is the population standard deviation (ddof = 0), like numpy's default.
"""

from __future__ import annotations

import io

import numpy as np
import numpy.typing as npt
from PIL import Image

from service.numerics.errors import InvalidArgument

_CHUNK = 1 << 20


def summarise(array: npt.ArrayLike) -> dict[str, float]:
    """`mean`, `std`, `min`, `max` and `sparsity` (fraction of exact zeros) of a finite array."""
    flat = np.ravel(np.asarray(array))  # a view when the array is contiguous
    if flat.size == 0:
        raise InvalidArgument("cannot summarise an empty array")
    count, mean, squares, zeros = 0, 0.0, 0.0, 0
    low, high = np.inf, -np.inf
    for start in range(0, flat.size, _CHUNK):
        chunk = flat[start : start + _CHUNK]
        low, high = min(low, float(chunk.min())), max(high, float(chunk.max()))
        zeros += chunk.size - int(np.count_nonzero(chunk))
        values = chunk.astype(np.float64)
        chunk_mean = float(values.mean())
        values -= chunk_mean
        chunk_squares = float(np.dot(values, values))
        total = count + chunk.size
        delta = chunk_mean - mean
        mean += delta * chunk.size / total
        squares += chunk_squares + delta * delta * count * chunk.size / total
        count = total
    return {
        "mean": mean,
        "std": float(np.sqrt(squares / count)),
        "min": low,
        "max": high,
        "sparsity": zeros / count,
    }


def top_channels(activation: npt.ArrayLike, k: int) -> list[dict[str, int | float]]:
    """The `k` channels of a (C, H, W) or (C,) activation with the highest mean, highest first.

    Ties keep the lower channel index first.
    """
    values = np.asarray(activation)
    if values.ndim not in (1, 3) or values.shape[0] == 0:
        raise InvalidArgument(f"an activation must be (C, H, W) or (C,), not {values.shape}")
    if isinstance(k, bool) or not isinstance(k, int | np.integer) or k < 0:
        raise InvalidArgument(f"k must be a whole number >= 0, not {k!r}")
    means = values.reshape(len(values), -1).mean(axis=1, dtype=np.float64)
    order = np.argsort(-means, kind="stable")[:k]
    return [{"channel": int(c), "mean": float(means[c])} for c in order]


def to_uint8(array: npt.ArrayLike) -> npt.NDArray[np.uint8]:
    """The array scaled linearly to 0-255: its min to 0, its max to 255; constant -> all 0.

    A (3, H, W) array is scaled jointly (one min and max over all channels), so
    the colours keep their relative strength; a constant array is drawn black,
    as the activation pictures draw a dead channel.
    """
    values = np.array(array, dtype=np.float32)  # the one working copy, scaled in place
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):  # NaN spreads to min and max
        raise InvalidArgument("cannot draw an array holding NaN or infinity")
    if high == low:
        return np.zeros(values.shape, dtype=np.uint8)
    scale = 255.0 / (high - low)  # float64, and x * scale - low * scale cannot overflow
    values *= scale
    values -= low * scale
    np.rint(values, out=values)
    return np.clip(values, 0, 255, out=values).astype(np.uint8)


def to_png_bytes(array: npt.ArrayLike) -> bytes:
    """A PNG of a 2-D (grey) or (3, H, W) (RGB) array, scaled for viewing by `to_uint8`."""
    values = np.asarray(array)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if not (values.ndim == 2 or (values.ndim == 3 and values.shape[0] == 3)) or values.size == 0:
        raise InvalidArgument(f"a picture needs a 2-D or (3, rows, cols) array, not {values.shape}")
    pixels = to_uint8(values)
    image = Image.fromarray(
        pixels if pixels.ndim == 2 else np.ascontiguousarray(pixels.transpose(1, 2, 0))
    )
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # speed over a few percent of size
    return buffer.getvalue()
