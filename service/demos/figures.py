"""The demonstrations' PNG answers: which channel of the equivariance maps to draw, which
fractions of the pooling answer to chart. The drawing itself is service/pictures.py's.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from service.demo_models import PoolingResponse, PoolShiftResult, Unchanged
from service.demos.equivariance import EquivarianceRun
from service.errors import BadInput
from service.numerics.shifts import compared_mask, moved_map
from service.pictures import ShiftPanels, fraction_bars_png, shift_comparison_png


def default_channel(run: EquivarianceRun) -> int:
    """The channel drawn unless one is asked for: the original map's most active one."""
    original = run.runs[0].original
    if original.ndim == 2:
        return 0
    return int(np.argmax(original.reshape(len(original), -1).mean(axis=1)))


def equivariance_png(run: EquivarianceRun, channel: int | None) -> tuple[bytes, int]:
    """The picture of one channel (default: the most active), and the channel drawn."""
    original = run.runs[0].original
    count = 1 if original.ndim == 2 else len(original)
    chosen = default_channel(run) if channel is None else channel
    if not 0 <= chosen < count:
        raise BadInput(f"channel must lie in 0..{count - 1}, not {chosen}")
    rows = []
    for shift in run.runs:
        plan = shift.comparison.plan
        moved, shifted = moved_map(shift.original, plan), shift.shifted
        if original.ndim == 3:
            moved, shifted = moved[chosen], shifted[chosen]
        labels = (
            f"original moved ({plan.cols.units}, {plan.rows.units})",
            f"input shifted ({plan.cols.pixels}, {plan.rows.pixels})",
            f"|difference|, interior max {shift.comparison.interior_max:.3g}",
        )
        rows.append(ShiftPanels(moved, shifted, compared_mask(plan), labels))
    return shift_comparison_png(rows), chosen


def pooling_png(response: PoolingResponse) -> bytes:
    """Bars of the fraction unchanged (zeros before and after left out) per shift."""
    what = response.layer or f"{response.size}x{response.size} pool"

    def bars(pick: Callable[[PoolShiftResult], Unchanged]) -> list[float]:
        return [pick(shift).unchanged_nonzero or 0.0 for shift in response.shifts]

    return fraction_bars_png(
        [str(shift.shift) for shift in response.shifts],
        [
            ("map itself (no pooling)", bars(lambda s: s.map_itself)),
            ("max pooling", bars(lambda s: s.max_pool)),
            ("average pooling", bars(lambda s: s.avg_pool)),
        ],
        f"{what}: unchanged non-zero outputs, shift 1..{len(response.shifts)} {response.direction}",
    )
