"""Preset kernels and parse_kernel, the validator of the kernels users send."""

from __future__ import annotations

import numpy as np
import pytest

from service.numerics.errors import InvalidArgument, InvalidKernel
from service.numerics.kernels import PRESETS, parse_kernel, preset


def test_presets_have_their_documented_values() -> None:
    assert PRESETS["edge"].shape == (1, 2)
    np.testing.assert_array_equal(PRESETS["edge"], [[1, -1]])
    np.testing.assert_array_equal(PRESETS["sobel_x"], [[1, 0, -1], [2, 0, -2], [1, 0, -1]])
    np.testing.assert_array_equal(PRESETS["sobel_y"], PRESETS["sobel_x"].T)
    np.testing.assert_array_equal(PRESETS["laplacian"], [[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    np.testing.assert_array_equal(PRESETS["gaussian"] * 16, [[1, 2, 1], [2, 4, 2], [1, 2, 1]])
    np.testing.assert_allclose(PRESETS["box"], np.full((3, 3), 1 / 9), rtol=1e-7)
    np.testing.assert_array_equal(PRESETS["sharpen"], [[0, -1, 0], [-1, 5, -1], [0, -1, 0]])
    np.testing.assert_array_equal(PRESETS["identity"], [[0, 0, 0], [0, 1, 0], [0, 0, 0]])
    for name in ("gaussian", "box", "sharpen", "identity"):
        assert PRESETS[name].sum() == pytest.approx(1.0, abs=1e-6), name
    assert all(kernel.dtype == np.float32 for kernel in PRESETS.values())


def test_presets_are_read_only() -> None:
    with pytest.raises(ValueError, match="read-only"):
        PRESETS["edge"][0, 0] = 5


def test_unknown_preset_names_the_choices() -> None:
    with pytest.raises(InvalidKernel, match=r"unknown preset 'blur'.*sobel_x"):
        preset("blur")


@pytest.mark.parametrize("obj", [[[1, -1]], "[[1, -1]]", b"[[1, -1.0]]", np.array([[1, -1]])])
def test_parse_kernel_accepts_lists_and_json(obj: object) -> None:
    kernel = parse_kernel(obj, max_size=31)
    assert kernel.dtype == np.float32
    np.testing.assert_array_equal(kernel, [[1, -1]])


def test_parse_kernel_accepts_exactly_the_largest_size() -> None:
    values = np.arange(31 * 31, dtype=float).reshape(31, 31) / 7
    np.testing.assert_allclose(parse_kernel(values.tolist(), 31), values, rtol=1e-7)


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "non-empty list of rows"),
        ("[]", "non-empty list of rows"),
        ({"a": 1}, "non-empty list of rows"),
        ([[]], "row 0 is empty"),
        ([[1, 2], []], "row 1 is empty"),
        ([[1, 2], [3]], "row 1 has 1 values but row 0 has 2"),
        ([[1], [2, 3]], "row 1 has 2 values but row 0 has 1"),
        ([[float("nan")]], r"kernel\[0\]\[0\] is nan; kernel values must be finite"),
        ([[1, float("inf")]], r"kernel\[0\]\[1\] is inf; kernel values must be finite"),
        ("[[NaN]]", "finite numbers, not NaN"),
        ("[[1, Infinity]]", "finite numbers, not Infinity"),
        ("[[-Infinity]]", "finite numbers, not -Infinity"),
        ([["1"]], r'kernel\[0\]\[0\] is "1"; kernel values must be numbers'),
        ('[[1, "a"]]', r'kernel\[0\]\[1\] is "a"; kernel values must be numbers'),
        ([[None]], "is null; kernel values must be numbers"),
        ([[True, 1]], "is true; kernel values must be numbers, not booleans"),
        ("[[1, false]]", "is false; kernel values must be numbers, not booleans"),
        ([[1] * 32], "row 0 has 32 values; at most 31"),
        ([[1]] * 32, "has 32 rows; at most 31"),
        ([[[1, 2]]], r"kernel\[0\]\[0\] is a list; the kernel must be 2-D"),
        ([1, -1], "row 0 is 1, not a list; the kernel must be 2-D"),
        ([[1], 2], "row 1 is 2, not a list"),
        ("[[1, -1]", "not valid JSON"),
        ("edge", "not valid JSON"),
        ([[1e39]], "too large for float32"),
        ([[10**400]], "too large for float32"),
        ("[[1" + "0" * 5000 + "]]", "not a valid JSON list"),
        ("[" * 30_000 + "]" * 30_000, "not a valid JSON list"),
        ("[" * 100_000, "too long"),
    ],
)
def test_parse_kernel_rejects_with_a_clear_message(obj: object, message: str) -> None:
    with pytest.raises(InvalidKernel, match=message):
        parse_kernel(obj, max_size=31)


def test_invalid_kernel_is_a_value_error() -> None:
    assert issubclass(InvalidKernel, InvalidArgument)
    assert issubclass(InvalidArgument, ValueError)
