"""Padding and output-shape arithmetic shared by convolution, pooling and the efficiency figures.

Everything is reduced to one operation: zero-pad the image, cross-correlate with a
kernel at stride 1, keep every `stride`-th row and column from the first. True
convolution is cross-correlation with the kernel flipped on both axes; what differs
between the two for `same` is where an even kernel sits, and that follows scipy:
`convolve2d(mode="same")` keeps the full result from row (k - 1) // 2,
`correlate2d(mode="same")` from row k // 2.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from service.numerics.errors import InvalidArgument

Mode = Literal["convolution", "cross_correlation"]
Padding = Literal["valid", "same", "full"]
MODES: tuple[Mode, ...] = ("convolution", "cross_correlation")
PADDINGS: tuple[Padding, ...] = ("valid", "same", "full")


def check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    """Raise InvalidArgument unless `value` is one of `choices`."""
    if value not in choices:
        raise InvalidArgument(f"{name} must be one of {', '.join(choices)}, not {value!r}")


def check_positive(name: str, value: int) -> None:
    """Raise InvalidArgument unless `value` is a whole number >= 1 (bools are not numbers here)."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise InvalidArgument(f"{name} must be a whole number >= 1, not {value!r}")


def axis_pads(size: int, kernel: int, padding: Padding, mode: Mode) -> tuple[int, int]:
    """Zeros added (before, after) on one axis so that stride-1 cross-correlation gives scipy's."""
    if padding == "valid":
        # Where one operand covers the other: scipy lets the image be the smaller one
        # (on both axes at once, checked by output_shape), keeping the full result's
        # entries size - 1 .. kernel - 1; padding kernel - size zeros each side does that.
        extra = max(0, kernel - size)
        return extra, extra
    if padding == "full":
        return kernel - 1, kernel - 1
    # same: the full result has size + kernel - 1 entries and scipy keeps `size` of them
    # starting at `start`; that is the same as padding kernel - 1 - start zeros before.
    start = (kernel - 1) // 2 if mode == "convolution" else kernel // 2
    return kernel - 1 - start, start


def output_length(size: int, kernel: int, padding: Padding, stride: int) -> int:
    """Entries along one axis of the result (the stride-1 length is the same in both modes)."""
    before, after = axis_pads(size, kernel, padding, "convolution")
    return (size + before + after - kernel) // stride + 1


def output_shape(
    image_shape: tuple[int, int], kernel_shape: tuple[int, int], padding: Padding, stride: int
) -> tuple[int, int]:
    """(rows, cols) of the result for a (rows, cols) image.

    Like scipy, valid padding needs the kernel to fit in the image, or the image in
    the kernel, on both axes; otherwise InvalidArgument.
    """
    (rows, cols), (kh, kw) = image_shape, kernel_shape
    if padding == "valid" and not (kh <= rows and kw <= cols) and not (kh >= rows and kw >= cols):
        raise InvalidArgument(
            f"the {kh}x{kw} kernel does not fit in the {rows}x{cols} image with valid "
            "padding (nor the image in the kernel); use same or full padding"
        )
    return (
        output_length(rows, kh, padding, stride),
        output_length(cols, kw, padding, stride),
    )


def taps_in_image(size: int, kernel: int, before: int, stride: int, count: int) -> int:
    """Sum over `count` outputs along one axis of the kernel taps that land inside the image."""
    total = 0
    for index in range(count):
        start = index * stride - before  # first image index under the window
        total += max(0, min(start + kernel, size) - max(start, 0))
    return total
