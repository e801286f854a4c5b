"""ConvolutionEngine against scipy.signal, the reference it must equal."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from service.numerics.convolution import ConvolutionEngine, convolve
from service.numerics.errors import InvalidArgument, InvalidKernel
from service.numerics.geometry import MODES, PADDINGS, Mode, Padding
from service.numerics.kernels import preset

CPU = ["CPUExecutionProvider"]
KERNEL_SHAPES = [(1, 2), (2, 1), (2, 2), (3, 3), (4, 3), (5, 5)]
SCIPY: dict[str, Callable[..., npt.NDArray[np.float64]]] = {
    "convolution": signal.convolve2d,
    "cross_correlation": signal.correlate2d,
}


@pytest.fixture(scope="module")
def engine() -> Iterator[ConvolutionEngine]:
    yield ConvolutionEngine(CPU, intra_op_threads=1)


def reference(
    image: np.ndarray, kernel: np.ndarray, mode: Mode, padding: Padding, stride: int
) -> np.ndarray:
    """scipy in float64, channel by channel, then every stride-th row and column."""
    channels = image if image.ndim == 3 else image[None]
    full = np.stack(
        [
            SCIPY[mode](c.astype(np.float64), kernel.astype(np.float64), mode=padding)
            for c in channels
        ]
    )[:, ::stride, ::stride]
    return full if image.ndim == 3 else full[0]


def assert_matches(
    actual: np.ndarray, expected: np.ndarray, image: np.ndarray, kernel: np.ndarray
) -> None:
    assert actual.dtype == np.float32
    assert actual.shape == expected.shape
    # float32 against float64: allow rounding relative to the largest possible output.
    scale = float(np.abs(kernel).sum() * max(1.0, float(np.abs(image).max())))
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5 * scale)


@pytest.mark.parametrize("rgb", [False, True], ids=["grey", "rgb"])
@pytest.mark.parametrize("stride", [1, 2, 3])
@pytest.mark.parametrize("padding", PADDINGS)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("kernel_shape", KERNEL_SHAPES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_equals_scipy(
    engine: ConvolutionEngine,
    kernel_shape: tuple[int, int],
    mode: Mode,
    padding: Padding,
    stride: int,
    rgb: bool,
) -> None:
    rng = np.random.default_rng(0)
    image = rng.standard_normal((3, 13, 17) if rgb else (13, 17)).astype(np.float32)
    kernel = rng.standard_normal(kernel_shape).astype(np.float32)
    actual = engine.convolve(image, kernel, mode=mode, padding=padding, stride=stride)
    assert_matches(actual, reference(image, kernel, mode, padding, stride), image, kernel)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize(
    "image_shape,kernel_shape", [((2, 3), (3, 5)), ((1, 1), (4, 2)), ((3, 3), (3, 3))]
)
def test_valid_with_the_image_inside_the_kernel_equals_scipy(
    engine: ConvolutionEngine,
    mode: Mode,
    image_shape: tuple[int, int],
    kernel_shape: tuple[int, int],
) -> None:
    rng = np.random.default_rng(7)
    image = rng.standard_normal(image_shape).astype(np.float32)
    kernel = rng.standard_normal(kernel_shape).astype(np.float32)
    actual = engine.convolve(image, kernel, mode=mode, padding="valid")
    assert_matches(actual, reference(image, kernel, mode, "valid", 1), image, kernel)


def test_valid_refuses_a_kernel_that_fits_neither_way_like_scipy(engine: ConvolutionEngine) -> None:
    image, kernel = np.ones((5, 5), np.float32), np.ones((6, 2), np.float32)
    with pytest.raises(ValueError):
        signal.convolve2d(image, kernel, mode="valid")
    with pytest.raises(InvalidArgument, match="does not fit"):
        engine.convolve(image, kernel, padding="valid")
    assert engine.convolve(image, kernel, padding="same").shape == (5, 5)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.integers(1, 12),
    cols=st.integers(1, 12),
    kh=st.integers(1, 6),
    kw=st.integers(1, 6),
    mode=st.sampled_from(MODES),
    padding=st.sampled_from(PADDINGS),
    stride=st.integers(1, 4),
    rgb=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
def test_property_equals_scipy_or_both_refuse(
    rows: int,
    cols: int,
    kh: int,
    kw: int,
    mode: Mode,
    padding: Padding,
    stride: int,
    rgb: bool,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    image = rng.uniform(-10, 10, (3, rows, cols) if rgb else (rows, cols)).astype(np.float32)
    kernel = rng.uniform(-3, 3, (kh, kw)).astype(np.float32)
    try:
        expected = reference(image, kernel, mode, padding, stride)
    except ValueError:
        with pytest.raises(InvalidArgument):
            convolve(image, kernel, mode=mode, padding=padding, stride=stride)
        return
    actual = convolve(image, kernel, mode=mode, padding=padding, stride=stride)
    assert_matches(actual, expected, image, kernel)


def test_edge_kernel_on_a_320_wide_280_high_image(engine: ConvolutionEngine) -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (280, 320)).astype(np.float32)
    result = engine.convolve(image, preset("edge"), mode="convolution", padding="valid")
    assert result.shape == (280, 319)
    # Each pixel minus its left neighbour, exactly: small integers are exact in float32.
    np.testing.assert_array_equal(result, image[:, 1:] - image[:, :-1])
    flipped = engine.convolve(image, preset("edge"), mode="cross_correlation")
    np.testing.assert_array_equal(flipped, image[:, :-1] - image[:, 1:])


def test_rgb_channels_are_convolved_independently(engine: ConvolutionEngine) -> None:
    rng = np.random.default_rng(1)
    image = rng.standard_normal((3, 20, 30)).astype(np.float32)
    kernel = rng.standard_normal((3, 4)).astype(np.float32)
    together = engine.convolve(image, kernel, padding="same", stride=2)
    for channel in range(3):
        alone = engine.convolve(image[channel], kernel, padding="same", stride=2)
        np.testing.assert_array_equal(together[channel], alone)


@pytest.mark.parametrize("mode", MODES)
def test_identity_preset_with_same_padding_returns_the_image(
    engine: ConvolutionEngine, mode: Mode
) -> None:
    image = np.random.default_rng(2).standard_normal((3, 9, 12)).astype(np.float32)
    result = engine.convolve(image, preset("identity"), mode=mode, padding="same")
    np.testing.assert_array_equal(result, image)


def test_sobel_presets_answer_positively_to_brightening(engine: ConvolutionEngine) -> None:
    rows, cols = np.mgrid[0:10, 0:12].astype(np.float32)
    np.testing.assert_array_equal(engine.convolve(cols, preset("sobel_x")), np.full((8, 10), 8))
    np.testing.assert_array_equal(engine.convolve(rows, preset("sobel_y")), np.full((8, 10), 8))
    np.testing.assert_array_equal(engine.convolve(rows, preset("sobel_x")), np.zeros((8, 10)))


def test_input_dtype_and_layout_are_normalised(engine: ConvolutionEngine) -> None:
    image = np.arange(48, dtype=np.float64).reshape(6, 8).T  # float64, not C-contiguous
    result = engine.convolve(image, [[1, 2], [3, 4]], padding="full")
    assert result.dtype == np.float32
    np.testing.assert_array_equal(result, signal.convolve2d(image, [[1, 2], [3, 4]], "full"))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "conv"}, "mode must be one of"),
        ({"padding": "circular"}, "padding must be one of"),
        ({"stride": 0}, "stride must be"),
        ({"stride": -2}, "stride must be"),
        ({"stride": True}, "stride must be"),
        ({"stride": 1.5}, "stride must be"),
    ],
)
def test_rejects_bad_arguments(
    engine: ConvolutionEngine, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(InvalidArgument, match=message):
        engine.convolve(np.ones((4, 4)), [[1.0]], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("image", "kernel", "error", "message"),
    [
        (np.ones(5), [[1.0]], InvalidArgument, "2-D"),
        (np.ones((1, 3, 4, 4)), [[1.0]], InvalidArgument, "2-D"),
        (np.ones((0, 4)), [[1.0]], InvalidArgument, "empty"),
        (np.ones((4, 4)), [[np.nan]], InvalidKernel, "finite"),
        (np.ones((4, 4)), np.ones((2, 2, 2)), InvalidKernel, "2-D"),
        (np.ones((4, 4)), np.ones((0, 2)), InvalidKernel, "non-empty"),
        (np.full((4, 4), np.nan), [[1.0]], InvalidArgument, "not finite"),
        (np.full((4, 4), 3e38), [[1.0, 1.0]], InvalidArgument, "not finite"),
    ],
)
def test_rejects_bad_images_and_kernels(
    engine: ConvolutionEngine,
    image: np.ndarray,
    kernel: npt.ArrayLike,
    error: type[Exception],
    message: str,
) -> None:
    with pytest.raises(error, match=message):
        engine.convolve(image, kernel)


def test_many_strides_across_threads_with_a_tiny_cache() -> None:
    small = ConvolutionEngine(CPU, intra_op_threads=1, cache_size=2)
    rng = np.random.default_rng(3)
    image = rng.standard_normal((3, 31, 29)).astype(np.float32)
    kernel = rng.standard_normal((3, 2)).astype(np.float32)
    jobs = [
        (mode, padding, stride)
        for mode in MODES
        for padding in PADDINGS
        for stride in (1, 2, 3, 4, 5)
    ] * 2
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(
            pool.map(
                lambda job: small.convolve(
                    image, kernel, mode=job[0], padding=job[1], stride=job[2]
                ),
                jobs,
            )
        )
    for (mode, padding, stride), result in zip(jobs, results, strict=True):
        assert_matches(result, reference(image, kernel, mode, padding, stride), image, kernel)


def test_numerics_import_neither_torch_nor_scipy() -> None:
    code = (
        "import sys, service.numerics.convolution, service.numerics.pooling, "
        "service.numerics.efficiency, service.numerics.statistics, service.numerics.kernels; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'scipy')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).resolve().parents[2],  # the repository root
    )
    assert result.stdout.strip() == "[]"
