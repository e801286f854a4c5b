"""Occlusion sensitivity (Zeiler & Fergus 2014): which parts of the input a class depends on.

A square patch of the mean colour slides over the network's input (the preprocessed
crop, where the data set's mean colour is 0 after normalisation); every occluded copy
is classified, and the drop in the target class's probability is the sensitivity of
the region the patch covered. Windows start every `stride` pixels, and a last one is
added flush with the far edge so every pixel is covered. Pure numpy: the copies run
through the service's batcher.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from service.numerics.errors import InvalidArgument


@dataclass(frozen=True)
class OcclusionGrid:
    """The windows of a patch sliding over a square input."""

    size: int  # side of the input, pixels
    patch: int
    stride: int

    def __post_init__(self) -> None:
        if not 1 <= self.patch <= self.size:
            raise InvalidArgument(
                f"the patch side must be 1 to {self.size} (the input's side), not {self.patch}"
            )
        if self.stride < 1:
            raise InvalidArgument(f"the stride must be at least 1, not {self.stride}")

    @property
    def starts(self) -> list[int]:
        """Offsets of the windows along either axis (the last one flush with the edge)."""
        starts = list(range(0, self.size - self.patch + 1, self.stride))
        if starts[-1] != self.size - self.patch:
            starts.append(self.size - self.patch)
        return starts

    @property
    def windows(self) -> int:
        return len(self.starts) ** 2


def occluded_copies(tensor: np.ndarray, grid: OcclusionGrid, fill: float = 0.0) -> list[np.ndarray]:
    """One copy of a (C, S, S) input per window, the window set to `fill`, row by row."""
    copies = []
    for top in grid.starts:
        for left in grid.starts:
            copy = tensor.copy()
            copy[:, top : top + grid.patch, left : left + grid.patch] = fill
            copies.append(copy)
    return copies


def sensitivity(base: float, occluded: np.ndarray, grid: OcclusionGrid) -> np.ndarray:
    """(rows, cols) drops of the target's probability, one per window (negative: it rose)."""
    side = len(grid.starts)
    return (base - np.asarray(occluded, np.float64)).reshape(side, side)


def pixel_map(drops: np.ndarray, grid: OcclusionGrid) -> np.ndarray:
    """(S, S) per pixel: the mean drop of the windows covering it (every pixel is covered)."""
    total = np.zeros((grid.size, grid.size))
    count = np.zeros((grid.size, grid.size))
    for row, top in enumerate(grid.starts):
        for col, left in enumerate(grid.starts):
            total[top : top + grid.patch, left : left + grid.patch] += drops[row, col]
            count[top : top + grid.patch, left : left + grid.patch] += 1
    return (total / count).astype(np.float32)
