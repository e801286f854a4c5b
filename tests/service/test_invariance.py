"""service.numerics.invariance against plain numpy: shift, pool with sliding windows, count."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from service.numerics.errors import InvalidArgument
from service.numerics.invariance import (
    Direction,
    Unchanged,
    largest_shift,
    pooling_invariance,
    step,
)
from service.numerics.pooling import PoolingEngine

CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def engine() -> Iterator[PoolingEngine]:
    yield PoolingEngine(CPU, intra_op_threads=1)


def reference(
    feature: np.ndarray, size: int, stride: int, dx: int, dy: int
) -> dict[str, tuple[int, int, int]]:
    """(compared, unchanged, zero) per op, by numpy: float64 windows, explicit shift."""
    shifted = np.zeros_like(feature)
    shifted[:, dy:, dx:] = feature[:, : feature.shape[1] - dy, : feature.shape[2] - dx]

    def pooled(array: np.ndarray, op: str) -> np.ndarray:
        windows = sliding_window_view(array.astype(np.float64), (size, size), axis=(1, 2))
        windows = windows[:, ::stride, ::stride]
        return windows.max(axis=(-1, -2)) if op == "max" else windows.mean(axis=(-1, -2))

    out = {}
    for op in ("max", "avg"):
        before, after = pooled(feature, op), pooled(shifted, op)
        # Output (i, j) reads columns j*stride.. : compared when that is at or past dx.
        keep = (slice(None), slice(-(-dy // stride), None), slice(-(-dx // stride), None))
        b, a = before[keep], after[keep]
        out[op] = (b.size, int((b == a).sum()), int(((b == 0) & (a == 0)).sum()))
    b, a = feature[:, dy:, dx:], shifted[:, dy:, dx:]
    out["map"] = (b.size, int((b == a).sum()), int(((b == 0) & (a == 0)).sum()))
    return out


def assert_counts(result: Unchanged, counts: tuple[int, int, int]) -> None:
    compared, unchanged, zero = counts
    assert result.compared == compared
    assert result.unchanged == pytest.approx(unchanged / compared, rel=1e-12)
    assert result.zero == pytest.approx(zero / compared, rel=1e-12)
    rest = compared - zero
    expected = (unchanged - zero) / rest if rest else None
    assert result.unchanged_nonzero == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(("size", "stride"), [(3, 2), (2, 2), (3, 1), (4, 3)])
@pytest.mark.parametrize("direction", ["right", "down", "diagonal"])
def test_equals_numpy(engine: PoolingEngine, size: int, stride: int, direction: Direction) -> None:
    # Small integers, half of them 0 (as after a ReLU): sums of a window are exact in
    # float32, so average pooling's equalities are the same in onnxruntime and numpy.
    rng = np.random.default_rng(size * 10 + stride)
    feature = (rng.integers(0, 4, (5, 17, 19)) * (rng.random((5, 17, 19)) < 0.5)).astype(np.float32)
    results = pooling_invariance(
        feature, size=size, stride=stride, max_shift=4, direction=direction, engine=engine
    )
    assert [r.shift for r in results] == [1, 2, 3, 4]
    for result in results:
        assert (result.dx, result.dy) == step(direction, result.shift)
        counts = reference(feature, size, stride, result.dx, result.dy)
        assert_counts(result.max_pool, counts["max"])
        assert_counts(result.avg_pool, counts["avg"])
        assert_counts(result.map_itself, counts["map"])


def test_two_peaks_by_hand(engine: PoolingEngine) -> None:
    # Columns 4 (value 1) and 6 (value 0.5) move to 5 and 7. Windows of 3, stride 2,
    # start at columns 0, 2, 4, 6, 8; those at or past the shift (2, 4, 6, 8) are
    # compared. Max before: 1, 1, 0.5, 0; after: 0, 1, 0.5, 0. Average before: 1/3,
    # 1.5/3, 0.5/3, 0; after: 0, 1/3, 0.5/3, 0.
    feature = np.zeros((1, 3, 11), np.float32)
    feature[0, :, 4], feature[0, :, 6] = 1.0, 0.5
    (one,) = pooling_invariance(
        feature, size=3, stride=2, max_shift=1, direction="right", engine=engine
    )
    assert one.max_pool.compared == one.avg_pool.compared == 4
    assert (one.max_pool.unchanged, one.avg_pool.unchanged) == (0.75, 0.5)
    assert one.max_pool.zero == one.avg_pool.zero == 0.25  # window 8
    assert one.max_pool.unchanged_nonzero == pytest.approx(2 / 3)  # windows 4, 6 of 2, 4, 6
    assert one.avg_pool.unchanged_nonzero == pytest.approx(1 / 3)  # window 6
    assert one.map_itself.compared == 3 * 10  # columns 1..10
    assert one.map_itself.unchanged_nonzero == 0.0  # columns 4..7 all changed


def test_grey_images_work_and_the_largest_shift_is_the_limit(engine: PoolingEngine) -> None:
    image = np.random.default_rng(1).integers(0, 255, (9, 30)).astype(np.float32)
    limit = largest_shift((9, 30), 3, 2, "right")
    assert limit == (14 - 1) * 2
    assert (
        len(
            pooling_invariance(
                image, size=3, stride=2, max_shift=limit, direction="right", engine=engine
            )
        )
        == limit
    )
    with pytest.raises(InvalidArgument, match="too large"):
        pooling_invariance(image, size=3, stride=2, max_shift=7, direction="down", engine=engine)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"size": 0}, "size must be"),
        ({"stride": 0}, "stride must be"),
        ({"max_shift": 0}, "max_shift must be"),
        ({"direction": "up"}, "direction must be one of"),
        ({"size": 9}, "does not fit"),
    ],
)
def test_rejects_bad_arguments(
    engine: PoolingEngine, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {"size": 3, "stride": 2, "max_shift": 2, "direction": "right"}
    arguments.update(kwargs)
    with pytest.raises(InvalidArgument, match=message):
        pooling_invariance(np.ones((8, 8), np.float32), engine=engine, **arguments)  # type: ignore[arg-type]
