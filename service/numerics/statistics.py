"""Summaries of arrays: convolution and pooling results, layer activations.

`summarise` reads the array once, in chunks of a million values, merging each
chunk's float64 mean and squared deviations (Chan et al.'s parallel formula), so
results are exact to float64 rounding and memory stays bounded for any size.
`std` is the population standard deviation (ddof = 0), like numpy's default.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

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
