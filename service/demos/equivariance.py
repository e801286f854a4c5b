"""Translation equivariance, measured on the model's layer or on a kernel of your own.

On the model: the preprocessed crop (the network's input tensor) and its shifted
copies go through the dynamic batcher as one request of three images (original,
requested shift, contrast), sharing batching, queue limits and deadline with
/v1/predict; the layer's maps come back from the exported graph, whose outputs
include every layer. On a kernel: the grey image and its shifted copies convolved
in one call of the ConvolutionEngine. Where the maps are compared, and how, is
service/numerics/shifts.py's.

Measured on the CPU provider (onnxruntime 1.31.1, seeded test model): every layer's
interior is bit-for-bit equal for stride-aligned shifts, whichever batch (1 to 5)
or thread count (1, 2) computed it. That is what one expects when each output is
summed over the kernel's taps and channels in an order set by the kernel, not by
the output's position: the same float32 operations on the same values. Nothing
here relies on it; other providers (a GPU's per-position tiling) may differ in the
last bits, and the answer reports what it measures.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import numpy as np
import numpy.typing as npt

from service.demo_models import Border, EquivarianceResponse, Geometry, Region, ShiftResult
from service.demos.offload import off_loop
from service.numerics.errors import InvalidArgument
from service.numerics.geometry import Mode, Padding, output_shape
from service.numerics.shifts import (
    Footprint,
    ShiftComparison,
    ShiftPlan,
    compare,
    kernel_footprints,
    layer_footprint,
    nearest_units,
    plan_shift,
    shift_image,
)
from service.state import ServiceState

FloatArray = npt.NDArray[np.float32]
Footprints = tuple[Footprint, Footprint]


@dataclass(frozen=True)
class ShiftRun:
    """One compared shift and the two maps it compared."""

    comparison: ShiftComparison
    original: FloatArray
    shifted: FloatArray


@dataclass(frozen=True)
class EquivarianceRun:
    """Everything the answer and the picture need."""

    response: EquivarianceResponse
    runs: list[ShiftRun]


def plan_pair(
    input_shape: tuple[int, int],
    map_shape: tuple[int, int],
    footprints: Footprints,
    dx: int,
    dy: int,
) -> list[ShiftPlan]:
    """The requested shift's plan (400 if nothing is left to compare), and its contrast's."""
    requested = plan_shift(input_shape, map_shape, footprints, dx, dy)
    rows, cols = footprints
    if not requested.aligned:
        candidates = [
            (nearest_units(dx, cols.jump) * cols.jump, nearest_units(dy, rows.jump) * rows.jump)
        ]
    elif cols.jump > 1:
        candidates = [(dx + 1, dy), (dx - 1, dy)]
    elif rows.jump > 1:
        candidates = [(dx, dy + 1), (dx, dy - 1)]
    else:
        return [requested]  # jump 1: every shift is aligned, there is no other kind
    for cdx, cdy in candidates:
        try:
            return [requested, plan_shift(input_shape, map_shape, footprints, cdx, cdy)]
        except InvalidArgument:  # the neighbour leaves nothing to compare
            continue
    return [requested]


def _result(comparison: ShiftComparison) -> ShiftResult:
    plan = comparison.plan
    return ShiftResult(
        dx=plan.cols.pixels,
        dy=plan.rows.pixels,
        aligned=plan.aligned,
        map_dx=plan.cols.units,
        map_dy=plan.rows.units,
        exact=comparison.interior_max == 0.0,
        interior=Region(
            rows=list(plan.rows.interior),
            cols=list(plan.cols.interior),
            units=comparison.interior_units,
            max_abs_difference=comparison.interior_max,
            differing_units=comparison.interior_differing,
        ),
        border=Border(
            units=comparison.border_units,
            max_abs_difference=comparison.border_max,
            differing_units=comparison.border_differing,
        ),
        new_units=comparison.new_units,
        max_abs_value=comparison.max_abs_value,
    )


def _compare_all(maps: list[FloatArray], plans: list[ShiftPlan]) -> list[ShiftRun]:
    return [
        ShiftRun(compare(maps[0], shifted, plan), maps[0], shifted)
        for shifted, plan in zip(maps[1:], plans, strict=True)
    ]


def _geometry(footprints: Footprints) -> Geometry:
    rows, cols = footprints
    return Geometry(
        receptive_field=[rows.size, cols.size],
        jump=[rows.jump, cols.jump],
        offset=[rows.offset, cols.offset],
    )


def _shifted_copies(array: FloatArray, plans: list[ShiftPlan]) -> list[FloatArray]:
    return [array, *(shift_image(array, plan.cols.pixels, plan.rows.pixels) for plan in plans)]


async def model_equivariance(
    state: ServiceState, tensor: FloatArray, layer: str, dx: int | None, dy: int | None
) -> EquivarianceRun:
    """Shift the network's input tensor; compare the layer's maps (through the batcher)."""
    manifest = state.artifacts.manifest
    footprint = layer_footprint(manifest.layers, layer)
    row = manifest.layer(layer)
    assert row is not None  # layer_footprint knows it
    input_shape = (int(tensor.shape[1]), int(tensor.shape[2]))
    map_shape = (row.output_shape[1], row.output_shape[2])
    footprints = (footprint, footprint)
    dx = footprint.jump if dx is None else dx
    dy = footprint.jump if dy is None else dy
    plans = plan_pair(input_shape, map_shape, footprints, dx, dy)
    batcher = state.require_batcher()
    outputs = await batcher.submit(
        _shifted_copies(tensor, plans), (layer,), timeout_s=state.settings.request_timeout_s
    )
    maps = [output[layer] for output in outputs]
    runs = await off_loop(state, partial(_compare_all, maps, plans))
    response = EquivarianceResponse(
        source="model",
        layer=layer,
        provider=state.require_engine().provider,
        input_shape=list(tensor.shape),
        map_shape=list(maps[0].shape),
        geometry=_geometry(footprints),
        requested=_result(runs[0].comparison),
        contrast=_result(runs[1].comparison) if len(runs) > 1 else None,
    )
    return EquivarianceRun(response, runs)


async def kernel_equivariance(
    state: ServiceState,
    pixels: FloatArray,
    kernel: FloatArray,
    *,
    mode: Mode,
    padding: Padding,
    stride: int,
    dx: int | None,
    dy: int | None,
) -> EquivarianceRun:
    """Shift the grey image; compare its convolutions (one ConvolutionEngine call)."""
    input_shape = (int(pixels.shape[0]), int(pixels.shape[1]))
    kernel_shape = (int(kernel.shape[0]), int(kernel.shape[1]))
    map_shape = output_shape(input_shape, kernel_shape, padding, stride)
    footprints = kernel_footprints(
        input_shape, kernel_shape, padding=padding, mode=mode, stride=stride
    )
    dx = stride if dx is None else dx
    dy = stride if dy is None else dy
    plans = plan_pair(input_shape, map_shape, footprints, dx, dy)
    engine = state.require_filters().convolution

    def work() -> list[ShiftRun]:
        stack = np.stack(_shifted_copies(pixels, plans))
        maps = engine.convolve(stack, kernel, mode=mode, padding=padding, stride=stride)
        return _compare_all(list(maps), plans)

    runs = await off_loop(state, work)
    response = EquivarianceResponse(
        source="kernel",
        layer=None,
        provider=engine.providers[0],
        input_shape=list(input_shape),
        map_shape=list(map_shape),
        geometry=_geometry(footprints),
        requested=_result(runs[0].comparison),
        contrast=_result(runs[1].comparison) if len(runs) > 1 else None,
    )
    return EquivarianceRun(response, runs)
