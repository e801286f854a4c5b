"""Approximate invariance of max pooling to small shifts, measured as outputs that do not change.

Shift a map by t = 1..k units (right, down or both; zeros move in) and pool it
again with the same window and stride. Output (i, j) is compared with output
(i, j) of the unshifted map — the same position, not a moved one: invariance
means the pooled value stays where it was. Only outputs whose window in the
shifted map covers no moved-in zeros are compared. A max over a window survives
a small shift whenever the window's largest value stays inside it; an average
changes with every value that enters or leaves, so it is the contrast. The
map itself (no pooling, each position against itself) is the baseline.

On ReLU maps about half the values are 0, and a window of zeros stays zero
under any shift and any pooling: those outputs are counted apart (`zero`), and
`unchanged_nonzero` is the fraction of the rest that stayed. On the seeded
test model's conv1 (cat photo, shift 1 right) that is 41% for max pooling, 5%
for average pooling and 0% for the map itself; counting the zeros in, 52%, 23%
and 41%. From a shift of 3 on, a 3-wide window sees none of its old values
and nothing non-zero stays.

Equality is exact (a max picks one of its inputs; float32 values are compared
as they are), so the fractions are counts a reader can redo with numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from service.numerics.convolution import FloatArray, as_image
from service.numerics.errors import InvalidArgument
from service.numerics.geometry import check_choice, check_positive
from service.numerics.pooling import PoolingEngine, pool_shape
from service.numerics.shifts import shift_image

Direction = Literal["right", "down", "diagonal"]
DIRECTIONS: tuple[Direction, ...] = ("right", "down", "diagonal")


def step(direction: Direction, t: int) -> tuple[int, int]:
    """(dx, dy) of a shift by t in a direction."""
    return (t if direction != "down" else 0, t if direction != "right" else 0)


@dataclass(frozen=True)
class Unchanged:
    """How many compared values stayed exactly the same after a shift."""

    compared: int  # values compared (positions x channels)
    unchanged: float  # fraction of them equal before and after
    zero: float  # fraction zero before and after: unchanged under any operation
    unchanged_nonzero: float | None  # fraction unchanged among the rest; None if no rest

    @classmethod
    def count(cls, before: FloatArray, after: FloatArray) -> Unchanged:
        same = before == after
        zero = (before == 0) & (after == 0)
        rest = int(same.size - np.count_nonzero(zero))
        nonzero_same = int(np.count_nonzero(same & ~zero))
        return cls(
            compared=int(same.size),
            unchanged=float(same.mean()),
            zero=float(zero.mean()),
            unchanged_nonzero=nonzero_same / rest if rest else None,
        )


@dataclass(frozen=True)
class PoolShift:
    """One shift: the map itself (the baseline), max pooling and average pooling."""

    shift: int
    dx: int
    dy: int
    map_itself: Unchanged
    max_pool: Unchanged
    avg_pool: Unchanged


def largest_shift(map_shape: tuple[int, int], size: int, stride: int, direction: Direction) -> int:
    """The largest shift that leaves a pooled output whose window sees no moved-in zeros."""
    rows, cols = pool_shape(map_shape, size, stride)
    along = {"right": cols, "down": rows, "diagonal": min(rows, cols)}[direction]
    return (along - 1) * stride


def _compared(array: FloatArray, dx: int, dy: int, stride: int) -> FloatArray:
    """The outputs whose window (start i*stride) lies at or past the shift: no moved-in zeros."""
    return array[..., -(-dy // stride) :, -(-dx // stride) :]


def pooling_invariance(
    feature: npt.ArrayLike,
    *,
    size: int,
    stride: int,
    max_shift: int,
    direction: Direction,
    engine: PoolingEngine,
) -> list[PoolShift]:
    """Per shift t = 1..max_shift, how much of max and average pooling stays the same.

    `feature` is (rows, cols) or (channels, rows, cols). All shifted copies are
    pooled in one call per op (they ride the channel axis).
    """
    check_choice("direction", direction, DIRECTIONS)
    check_positive("size", size)
    check_positive("stride", stride)
    check_positive("max_shift", max_shift)
    channels, _ = as_image(feature, "map")
    rows, cols = channels.shape[1:]
    if size > rows or size > cols:
        raise InvalidArgument(f"the {size}x{size} window does not fit in the {rows}x{cols} map")
    limit = largest_shift((rows, cols), size, stride, direction)
    if max_shift > limit:
        raise InvalidArgument(
            f"a shift of {max_shift} is too large for the {rows}x{cols} map with window "
            f"{size} and stride {stride}: no pooled output would be left to compare; "
            f"at most {limit}"
        )
    shifts = [step(direction, t) for t in range(1, max_shift + 1)]
    stack = np.concatenate([channels, *(shift_image(channels, dx, dy) for dx, dy in shifts)])
    pooled = {op: engine.pool(stack, op=op, size=size, stride=stride) for op in ("max", "avg")}
    count = len(channels)
    results = []
    for t, (dx, dy) in enumerate(shifts, start=1):
        after = slice(t * count, (t + 1) * count)
        pooled_pairs = {
            op: Unchanged.count(
                _compared(out[:count], dx, dy, stride), _compared(out[after], dx, dy, stride)
            )
            for op, out in pooled.items()
        }
        itself = Unchanged.count(_compared(channels, dx, dy, 1), _compared(stack[after], dx, dy, 1))
        results.append(PoolShift(t, dx, dy, itself, pooled_pairs["max"], pooled_pairs["avg"]))
    return results
