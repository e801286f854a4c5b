"""Translation equivariance, measured: shift an input, compare the map with the original moved.

A convolution (or pooling) computes each unit of its map from a window of the
input, the same way at every position. Shift the input by (dx, dy) pixels and,
where the jump (the layer's total stride, in input pixels) divides the shift,
the map shifts by (dx / jump, dy / jump) units: unit (i, j) of the shifted input's
map is unit (i - dy / jump, j - dx / jump) of the original's, computed from the
same input values. That equality holds only where both units see the same
pixels, which this module works out from the layer's geometry (`Footprint`):

- interior: the unit's receptive field lies inside the image's real pixels in
  both inputs (none of the zeros the shift moves in, none of the padding);
- border: the unit has a counterpart in the original map, but its field reaches
  the fill or the padding (what the frame of the image does to equivariance);
- new: units with no counterpart, moved in from outside the original's frame.

A shift that the jump does not divide moves the map by no whole number of
units: it is compared with the original moved by the nearest whole number, and
differs everywhere. `plan_shift` does the geometry (no arrays), `compare` the
arithmetic, in plain numpy, exactly (no tolerance: the caller reports what it is).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from core.manifest import Layer
from service.numerics.errors import InvalidArgument
from service.numerics.geometry import Mode, Padding, axis_pads

Range = tuple[int, int]  # [start, stop) of map units along one axis


@dataclass(frozen=True)
class Footprint:
    """Where a map's units look along one axis: unit i sees input pixels offset + i*jump, +size."""

    size: int  # the receptive field
    jump: int  # input pixels between neighbouring units
    offset: int  # first input pixel of unit 0's field: negative where padding comes first

    def first_unit_from(self, pixel: int) -> int:
        """The first unit whose field starts at or after `pixel`."""
        return -((self.offset - pixel) // self.jump)  # ceil((pixel - offset) / jump)

    def last_unit_before(self, pixel: int) -> int:
        """The last unit whose field ends at or before `pixel` (exclusive end); may be -1."""
        return (pixel - self.size - self.offset) // self.jump


def layer_footprint(layers: Sequence[Layer], name: str) -> Footprint:
    """The footprint of a spatial layer, from the manifest's layer table.

    Receptive field and jump are the table's own; the offset adds up the padding
    of every layer up to this one, each counted in the input pixels of its
    input's jump (LRN and the rest have padding 0).
    """
    offset, previous_jump = 0, 1
    for layer in layers:
        offset -= layer.padding * previous_jump
        if layer.name == name:
            if layer.type == "fc":
                raise InvalidArgument(
                    f"{name} is fully connected: it has no map to shift; choose one of "
                    f"{', '.join(spatial_layers(layers))}"
                )
            return Footprint(layer.receptive_field, layer.jump, offset)
        previous_jump = layer.jump
    raise InvalidArgument(
        f"unknown layer {name}; valid layers: {', '.join(spatial_layers(layers))}"
    )


def spatial_layers(layers: Sequence[Layer]) -> list[str]:
    """The layers with maps (conv, pool, norm), in order."""
    return [layer.name for layer in layers if layer.type != "fc"]


def kernel_footprints(
    image_shape: tuple[int, int],
    kernel_shape: tuple[int, int],
    *,
    padding: Padding,
    mode: Mode,
    stride: int,
) -> tuple[Footprint, Footprint]:
    """(rows, cols) footprints of `ConvolutionEngine.convolve` with these arguments."""
    footprints = []
    for size, kernel in zip(image_shape, kernel_shape, strict=True):
        before, _ = axis_pads(size, kernel, padding, mode)
        footprints.append(Footprint(kernel, stride, -before))
    return footprints[0], footprints[1]


def shift_image(array: npt.NDArray[np.float32], dx: int, dy: int) -> npt.NDArray[np.float32]:
    """The array moved by dx columns and dy rows (positive: right, down); zeros move in."""
    rows, cols = array.shape[-2:]
    out = np.zeros_like(array)
    if abs(dy) >= rows or abs(dx) >= cols:
        return out
    source_rows, target_rows = _moved(rows, dy)
    source_cols, target_cols = _moved(cols, dx)
    out[..., target_rows, target_cols] = array[..., source_rows, source_cols]
    return out


def _moved(length: int, shift: int) -> tuple[slice, slice]:
    if shift >= 0:
        return slice(0, length - shift), slice(shift, length)
    return slice(-shift, length), slice(0, length + shift)


def nearest_units(pixels: int, jump: int) -> int:
    """The whole number of units nearest to pixels / jump (halves rounded up); exact for any int."""
    return (2 * pixels + jump) // (2 * jump)


@dataclass(frozen=True)
class AxisPlan:
    """One axis of a comparison: the map shift and which units are compared."""

    pixels: int  # the input shift
    units: int  # the map shift compared against
    compared: Range  # units of the shifted map that have a counterpart in the original
    interior: Range  # of those, units whose field sees only real pixels in both inputs
    aligned: bool  # the jump divides the shift: the map moves by exactly `units`


def _plan_axis(length: int, units_in_map: int, footprint: Footprint, pixels: int) -> AxisPlan:
    units = nearest_units(pixels, footprint.jump)
    compared = (max(0, units), min(units_in_map, units_in_map + units))
    # Real pixels of the shifted input: the fill occupies the first `pixels` (or the last).
    real_start, real_stop = max(0, pixels), length + min(0, pixels)
    # The unit's field in the shifted input, and its counterpart's in the original.
    first = max(
        compared[0],
        footprint.first_unit_from(real_start),
        units + footprint.first_unit_from(0),
    )
    last = min(
        compared[1] - 1,
        footprint.last_unit_before(real_stop),
        units + footprint.last_unit_before(length),
    )
    interior = (first, last + 1) if first <= last else (first, first)
    return AxisPlan(pixels, units, compared, interior, pixels % footprint.jump == 0)


@dataclass(frozen=True)
class ShiftPlan:
    """What to compare for an input shift of (dx, dy): the geometry, before any arithmetic."""

    rows: AxisPlan
    cols: AxisPlan
    map_shape: tuple[int, int]

    @property
    def aligned(self) -> bool:
        """Whether the jump divides both components of the shift (the map shifts exactly)."""
        return self.rows.aligned and self.cols.aligned

    @property
    def interior_positions(self) -> int:
        return _length(self.rows.interior) * _length(self.cols.interior)

    @property
    def compared_positions(self) -> int:
        return _length(self.rows.compared) * _length(self.cols.compared)


def _length(span: Range) -> int:
    return max(0, span[1] - span[0])


def plan_shift(
    input_shape: tuple[int, int],
    map_shape: tuple[int, int],
    footprints: tuple[Footprint, Footprint],
    dx: int,
    dy: int,
) -> ShiftPlan:
    """The comparison for a shift; InvalidArgument if no unit of the map is left to compare."""
    rows = _plan_axis(input_shape[0], map_shape[0], footprints[0], dy)
    cols = _plan_axis(input_shape[1], map_shape[1], footprints[1], dx)
    plan = ShiftPlan(rows, cols, map_shape)
    if plan.interior_positions == 0:
        raise InvalidArgument(
            f"a shift of (dx={dx}, dy={dy}) is too large for the {input_shape[0]}x"
            f"{input_shape[1]} input: no unit of the {map_shape[0]}x{map_shape[1]} map "
            f"(receptive field {footprints[0].size}x{footprints[1].size}, jump "
            f"{footprints[0].jump}) sees only image pixels in both inputs"
        )
    return plan


@dataclass(frozen=True)
class ShiftComparison:
    """The numbers of one comparison (units count channels too: positions x channels)."""

    plan: ShiftPlan
    channels: int
    interior_max: float  # max |shifted - original moved| over the interior
    interior_differing: int  # interior units that differ at all
    border_units: int
    border_max: float | None  # None when there is no border unit to compare
    border_differing: int
    new_units: int
    max_abs_value: float  # largest |value| of the original map: the scale of the differences

    @property
    def interior_units(self) -> int:
        return self.plan.interior_positions * self.channels


def moved_map(original: npt.NDArray[np.float32], plan: ShiftPlan) -> npt.NDArray[np.float32]:
    """The original map moved by the plan's whole units (zeros where nothing moves in)."""
    return shift_image(original, plan.cols.units, plan.rows.units)


def compared_mask(plan: ShiftPlan) -> npt.NDArray[np.int8]:
    """Per map position: 0 new (no counterpart), 1 border, 2 interior."""
    mask = np.zeros(plan.map_shape, np.int8)
    mask[slice(*plan.rows.compared), slice(*plan.cols.compared)] = 1
    mask[slice(*plan.rows.interior), slice(*plan.cols.interior)] = 2
    return mask


def compare(
    original: npt.NDArray[np.float32], shifted: npt.NDArray[np.float32], plan: ShiftPlan
) -> ShiftComparison:
    """Compare the shifted input's map with the original map moved, as the plan says.

    Maps are (rows, cols) or (channels, rows, cols); differences are computed in
    float64 from the float32 values, so a difference is never rounded to zero.
    """
    if original.shape != shifted.shape or original.shape[-2:] != plan.map_shape:
        raise InvalidArgument(
            f"maps of shapes {original.shape} and {shifted.shape} do not match the plan's "
            f"{plan.map_shape}"
        )
    channels = int(np.prod(original.shape[:-2], dtype=np.int64))
    difference = np.abs(shifted.astype(np.float64) - moved_map(original, plan).astype(np.float64))
    where = compared_mask(plan)
    interior = difference[..., where == 2]
    border = difference[..., where == 1]
    return ShiftComparison(
        plan=plan,
        channels=channels,
        interior_max=float(interior.max()),
        interior_differing=int(np.count_nonzero(interior)),
        border_units=int(border.size),
        border_max=float(border.max()) if border.size else None,
        border_differing=int(np.count_nonzero(border)),
        new_units=int(np.count_nonzero(where == 0)) * channels,
        max_abs_value=float(np.abs(original).max()),
    )
