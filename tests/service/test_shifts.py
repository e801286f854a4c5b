"""service.numerics.shifts: footprints, plans and comparisons, against scipy and onnxruntime.

The geometry is checked three ways: by hand for conv1; against onnxruntime run
directly on the exported model (which input rows change a unit = its receptive
field, sparse interactions measured); and, for kernels of any shape, padding,
mode and stride, against scipy with NaN moved in and NaN padding: a unit "sees
only image pixels in both inputs" exactly when scipy's value for it is a number
in both maps.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import signal

from core.manifest import read_manifest
from model.architecture import layer_table, paper_alexnet, torchvision_alexnet
from service.numerics.errors import InvalidArgument
from service.numerics.geometry import MODES, PADDINGS, Mode, Padding, output_shape
from service.numerics.shifts import (
    Footprint,
    compare,
    compared_mask,
    kernel_footprints,
    layer_footprint,
    moved_map,
    nearest_units,
    plan_shift,
    shift_image,
    spatial_layers,
)

CONV1 = Footprint(size=11, jump=4, offset=0)


def numpy_shift(array: np.ndarray, dx: int, dy: int, fill: float = 0.0) -> np.ndarray:
    """The obvious loop: out[y, x] = array[y - dy, x - dx] where that exists, else fill."""
    out = np.full(array.shape, fill, dtype=np.float64)
    rows, cols = array.shape[-2:]
    for y in range(rows):
        for x in range(cols):
            if 0 <= y - dy < rows and 0 <= x - dx < cols:
                out[..., y, x] = array[..., y - dy, x - dx]
    return out


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("conv1", (11, 4, 0)),
        ("pool1", (19, 8, 0)),
        ("norm1", (19, 8, 0)),
        ("conv2", (51, 8, -16)),  # padding 2 on norm1's jump of 8
        ("pool2", (67, 16, -16)),
        ("conv3", (99, 16, -32)),  # padding 1 on pool2's jump of 16, and so on
        ("conv4", (131, 16, -48)),
        ("conv5", (163, 16, -64)),
        ("pool3", (195, 32, -64)),
    ],
)
def test_paper_footprints_by_hand(name: str, expected: tuple[int, int, int]) -> None:
    footprint = layer_footprint(layer_table(paper_alexnet(10)), name)
    assert (footprint.size, footprint.jump, footprint.offset) == expected


def test_torchvision_conv1_is_padded() -> None:
    footprint = layer_footprint(layer_table(torchvision_alexnet(10)), "conv1")
    assert (footprint.size, footprint.jump, footprint.offset) == (11, 4, -2)


@pytest.mark.parametrize(("name", "message"), [("fc6", "fully connected"), ("conv9", "unknown")])
def test_layers_without_a_map_are_refused(name: str, message: str) -> None:
    layers = layer_table(paper_alexnet(10))
    with pytest.raises(InvalidArgument, match=message):
        layer_footprint(layers, name)
    assert spatial_layers(layers)[0] == "conv1" and "fc6" not in spatial_layers(layers)


def test_footprints_are_the_rows_that_reach_a_unit(exported_artifacts: Path) -> None:
    """Change one input row at a time (onnxruntime, no service code): which map rows move?"""
    manifest = read_manifest(exported_artifacts)
    session = ort.InferenceSession(
        str(exported_artifacts / "alexnet.onnx"), providers=["CPUExecutionProvider"]
    )
    names = spatial_layers(manifest.layers)
    size = manifest.input.shape[1]
    base = np.random.default_rng(0).standard_normal((1, *manifest.input.shape)).astype(np.float32)
    plain = session.run(names, {"input": base})
    footprints = {name: layer_footprint(manifest.layers, name) for name in names}
    # The rows where a field starts or ends for units 0, 1 and the last: enough to pin down
    # offset, size and jump, and far fewer model runs than all 227 rows.
    rows: set[int] = set()
    for name, fp in footprints.items():
        last = manifest.layer(name).output_shape[1] - 1  # type: ignore[union-attr]
        for unit in (0, 1, last):
            start = fp.offset + unit * fp.jump
            rows |= {start - 1, start, start + fp.size - 1, start + fp.size}
    rows = {row for row in rows if 0 <= row < size}
    for row in sorted(rows):
        changed = base.copy()
        changed[0, :, row, :] += 3.0
        maps = session.run(names, {"input": changed})
        for name, before, after in zip(names, plain, maps, strict=True):
            moved = np.flatnonzero((before[0] != after[0]).any(axis=(0, 2)))
            fp = footprints[name]
            reached = [
                u for u in range(before.shape[2]) if 0 <= row - fp.offset - u * fp.jump < fp.size
            ]
            assert moved.tolist() == reached, (name, row)


def test_shift_image_equals_the_obvious_loop() -> None:
    image = np.arange(3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7) + 1
    for dx, dy in [(0, 0), (2, 1), (-3, 2), (6, -4), (7, 0), (0, -5), (-9, 9)]:
        np.testing.assert_array_equal(shift_image(image, dx, dy), numpy_shift(image, dx, dy))


@pytest.mark.parametrize(
    ("pixels", "jump", "units"),
    [(8, 4, 2), (5, 4, 1), (6, 4, 2), (-6, 4, -1), (-5, 4, -1), (2, 4, 1), (3, 2, 2)],
)
def test_nearest_units(pixels: int, jump: int, units: int) -> None:
    assert nearest_units(pixels, jump) == units


def test_conv1_plan_by_hand() -> None:
    # Unit i sees input rows 4i .. 4i+10. Shifted down by 4, the input's real rows are
    # 4..226, so units 1..54 see only them, and unit i's counterpart is unit i - 1.
    plan = plan_shift((227, 227), (55, 55), (CONV1, CONV1), dx=-8, dy=4)
    assert plan.aligned
    assert (plan.rows.units, plan.rows.compared, plan.rows.interior) == (1, (1, 55), (1, 55))
    # Shifted left by 8: real columns 0..218, so units with 4j + 11 <= 219, j <= 52, and
    # unit j's counterpart j + 2 exists for j <= 52.
    assert (plan.cols.units, plan.cols.compared, plan.cols.interior) == (-2, (0, 53), (0, 53))
    assert plan.interior_positions == 54 * 53
    unaligned = plan_shift((227, 227), (55, 55), (CONV1, CONV1), dx=5, dy=4)
    assert not unaligned.aligned and unaligned.cols.units == 1
    # Real columns start at 5: unit 1 (columns 4..14) sees a moved-in zero.
    assert unaligned.cols.interior == (2, 55)


@pytest.mark.parametrize(("dx", "dy"), [(220, 0), (0, -217), (10**40, 0)])
def test_a_shift_that_leaves_no_interior_is_refused(dx: int, dy: int) -> None:
    with pytest.raises(InvalidArgument, match="too large for the 227x227 input"):
        plan_shift((227, 227), (55, 55), (CONV1, CONV1), dx=dx, dy=dy)


def test_compare_counts_by_hand() -> None:
    rows = cols = Footprint(size=2, jump=1, offset=-1)  # a 2-wide kernel padded by 1 before
    plan = plan_shift((4, 4), (5, 5), (rows, cols), dx=1, dy=0)
    # Columns: counterpart j - 1 exists for j >= 1; the field j-1..j is real (1..3) for j >= 2.
    assert plan.cols.compared == (1, 5) and plan.cols.interior == (2, 4)
    # Rows: no shift, but units 0 and 4 reach the padding.
    assert plan.rows.compared == (0, 5) and plan.rows.interior == (1, 4)
    original = np.arange(2 * 25, dtype=np.float32).reshape(2, 5, 5)
    shifted = moved_map(original, plan)
    shifted[1, 0, 2] += 0.5  # a border unit (row 0 sees the padding)
    shifted[0, 2, 3] -= 0.25  # an interior unit
    result = compare(original, shifted, plan)
    assert result.interior_units == 2 * 3 * 2 and result.interior_max == 0.25
    assert result.interior_differing == 1
    assert result.border_units == 2 * (5 * 4 - 3 * 2) and result.border_max == 0.5
    assert result.new_units == 2 * 5  # column 0 has no counterpart
    assert result.max_abs_value == 49
    mask = compared_mask(plan)
    assert (mask == 2).sum() == 6 and (mask == 0).sum() == 5


@dataclass(frozen=True)
class KernelCase:
    image: np.ndarray
    kernel: np.ndarray
    mode: Mode
    padding: Padding
    stride: int
    dx: int
    dy: int

    def scipy_map(self, image: np.ndarray) -> np.ndarray:
        """scipy's result with NaN as the padding value: a unit that sees padding is NaN."""
        function = signal.convolve2d if self.mode == "convolution" else signal.correlate2d
        full = function(image, self.kernel, mode=self.padding, fillvalue=np.nan)
        return full[:: self.stride, :: self.stride]


@st.composite
def kernel_cases(draw: st.DrawFn) -> KernelCase:
    rows, cols = draw(st.integers(3, 16)), draw(st.integers(3, 16))
    kh, kw = draw(st.integers(1, 4)), draw(st.integers(1, 4))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    return KernelCase(
        image=rng.integers(0, 10, (rows, cols)).astype(np.float64),
        kernel=rng.integers(-3, 4, (kh, kw)).astype(np.float64),
        mode=draw(st.sampled_from(MODES)),
        padding=draw(st.sampled_from(PADDINGS)),
        stride=draw(st.integers(1, 3)),
        dx=draw(st.integers(-6, 6)),
        dy=draw(st.integers(-6, 6)),
    )


@given(case=kernel_cases())
@settings(max_examples=300, deadline=None)
def test_the_interior_is_where_scipy_sees_only_image_pixels(case: KernelCase) -> None:
    shape = (case.image.shape[0], case.image.shape[1])
    kshape = (case.kernel.shape[0], case.kernel.shape[1])
    if case.padding == "valid" and (kshape[0] > shape[0] or kshape[1] > shape[1]):
        return  # scipy swaps the operands or refuses; so does the engine
    footprints = kernel_footprints(
        shape, kshape, padding=case.padding, mode=case.mode, stride=case.stride
    )
    map_shape = output_shape(shape, kshape, case.padding, case.stride)
    original = case.scipy_map(case.image)
    assert original.shape == map_shape
    shifted = case.scipy_map(numpy_shift(case.image, case.dx, case.dy, fill=np.nan))
    units = (nearest_units(case.dy, case.stride), nearest_units(case.dx, case.stride))
    moved = numpy_shift(original, units[1], units[0], fill=np.nan)
    both_numbers = ~np.isnan(shifted) & ~np.isnan(moved)
    try:
        plan = plan_shift(shape, map_shape, footprints, case.dx, case.dy)
    except InvalidArgument:
        assert not both_numbers.any()  # refused exactly when nothing is left to compare
        return
    assert ((compared_mask(plan) == 2) == both_numbers).all()
    if plan.aligned:  # integers: scipy's float64 sums are exact, so equal means equal
        np.testing.assert_array_equal(shifted[both_numbers], moved[both_numbers])
