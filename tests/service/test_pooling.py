"""PoolingEngine against plain-numpy references: explicit loops and, for tiles, reshaping."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest

from service.numerics.errors import InvalidArgument
from service.numerics.pooling import PoolingEngine, PoolOp, pool, pool_shape

CPU = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def engine() -> Iterator[PoolingEngine]:
    yield PoolingEngine(CPU, intra_op_threads=1)


def loop_reference(image: np.ndarray, op: str, size: int, stride: int) -> np.ndarray:
    """Pooling the slow obvious way: every window, one at a time, in float64."""
    channels = image if image.ndim == 3 else image[None]
    rows = (channels.shape[1] - size) // stride + 1
    cols = (channels.shape[2] - size) // stride + 1
    out = np.empty((len(channels), rows, cols))
    for c in range(len(channels)):
        for i in range(rows):
            for j in range(cols):
                window = channels[c, i * stride : i * stride + size, j * stride : j * stride + size]
                out[c, i, j] = window.max() if op == "max" else window.astype(np.float64).mean()
    return out if image.ndim == 3 else out[0]


@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "rgb"])
@pytest.mark.parametrize(
    ("size", "stride"), [(1, 1), (2, None), (2, 1), (3, 2), (3, None), (4, 3), (2, 5), (5, 1)]
)
@pytest.mark.parametrize("op", ["max", "avg"])
def test_equals_loop_reference(
    engine: PoolingEngine, op: PoolOp, size: int, stride: int | None, rgb: bool
) -> None:
    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 11, 14) if rgb else (11, 14)).astype(np.float32)
    result = engine.pool(image, op=op, size=size, stride=stride)
    expected = loop_reference(image, op, size, size if stride is None else stride)
    assert result.dtype == np.float32
    assert result.shape == expected.shape
    if op == "max":
        np.testing.assert_array_equal(result, expected)  # a max picks a value: exact
    else:
        np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["max", "avg"])
def test_non_overlapping_tiles_equal_a_reshape(engine: PoolingEngine, op: PoolOp) -> None:
    image = np.random.default_rng(1).uniform(0, 255, (3, 64, 98)).astype(np.float32)
    tiles = image[:, :64, :96].reshape(3, 16, 4, 24, 4).astype(np.float64)
    expected = tiles.max(axis=(2, 4)) if op == "max" else tiles.mean(axis=(2, 4))
    result = engine.pool(image, op=op, size=4)  # the last 2 columns fit no window
    assert result.shape == (3, 16, 24)
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_stride_defaults_to_size_and_shapes_follow_the_formula(engine: PoolingEngine) -> None:
    image = np.arange(10 * 13, dtype=np.float32).reshape(10, 13)
    assert engine.pool(image, size=3).shape == (3, 4) == pool_shape((10, 13), 3)
    assert engine.pool(image, size=3, stride=1).shape == (8, 11) == pool_shape((10, 13), 3, 1)
    assert engine.pool(image, size=10, stride=7).shape == (1, 1)
    np.testing.assert_array_equal(engine.pool(image, op="max", size=2)[0], [14, 16, 18, 20, 22, 24])


def test_module_function_uses_a_default_engine() -> None:
    image = np.array([[1, 2, 5, 6], [3, 4, 7, 8]], dtype=np.float32)
    np.testing.assert_array_equal(pool(image, op="max", size=2), [[4, 8]])
    np.testing.assert_array_equal(pool(image, op="avg", size=2), [[2.5, 6.5]])


def test_many_windows_with_a_tiny_cache() -> None:
    small = PoolingEngine(CPU, intra_op_threads=1, cache_size=2)
    image = np.random.default_rng(2).standard_normal((2, 12, 9)).astype(np.float32)
    for _ in range(2):
        for op in ("max", "avg"):
            for size in (1, 2, 3):
                expected = loop_reference(image, op, size, size)
                result = small.pool(image, op=op, size=size)
                np.testing.assert_allclose(result, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"op": "min"}, "op must be one of max, avg"),
        ({"size": 0}, "size must be"),
        ({"size": 2, "stride": 0}, "stride must be"),
        ({"size": 2.0}, "size must be"),
        ({"size": 6}, "6x6 window does not fit in the 5x7 image"),
    ],
)
def test_rejects_bad_arguments(
    engine: PoolingEngine, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        engine.pool(np.ones((5, 7), np.float32), **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("shape", [(5,), (1, 2, 5, 5), (0, 5)])
def test_rejects_bad_images(engine: PoolingEngine, shape: tuple[int, ...]) -> None:
    with pytest.raises(InvalidArgument):
        engine.pool(np.ones(shape, np.float32), size=1)
