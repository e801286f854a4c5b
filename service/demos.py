"""The lecture's two properties, run on the service's own model and numerics engines.

Equivariance on the model: the preprocessed crop (the network's input tensor)
and its shifted copies go through the dynamic batcher as one request of three
images (original, requested shift, contrast), sharing batching, queue limits
and deadline with /v1/predict; the layer's maps come back from the exported
graph, whose outputs include every layer. Equivariance on a kernel: the grey
image and its shifted copies convolved in one call of the ConvolutionEngine.
Pooling invariance: the map the model's pooling layer reads (conv1 for pool1)
is shifted by 1..k units and pooled by the PoolingEngine with the layer's own
window and stride; that the engine pools as the network does is checked on
every request against the model's own output (`model_max_abs_difference`).
The map is shifted rather than the image because a one-pixel shift of the image
does not shift conv1 at all (stride 4): the property is about pooling's input.

Measured on the CPU provider (onnxruntime 1.31.1, seeded test model): every layer's
interior is bit-for-bit equal for stride-aligned shifts, whichever batch (1 to 5)
or thread count (1, 2) computed it. That is what one expects when each output is
summed over the kernel's taps and channels in an order set by the kernel, not by
the output's position: the same float32 operations on the same values. Nothing
here relies on it; other providers (a GPU's per-position tiling) may differ in the
last bits, and the answer reports what it measures.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TypeVar

import numpy as np
import numpy.typing as npt

from service.demo_models import (
    Border,
    EquivarianceResponse,
    Geometry,
    PoolingResponse,
    PoolShiftResult,
    Region,
    ShiftResult,
    Unchanged,
)
from service.errors import BadInput
from service.numerics.errors import InvalidArgument
from service.numerics.geometry import Mode, Padding, output_shape
from service.numerics.invariance import Direction, PoolShift, pooling_invariance
from service.numerics.shifts import (
    Footprint,
    ShiftComparison,
    ShiftPlan,
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
from service.pictures import ShiftPanels, fraction_bars_png, shift_comparison_png
from service.state import ServiceState

FloatArray = npt.NDArray[np.float32]
Footprints = tuple[Footprint, Footprint]
T = TypeVar("T")


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


def first_spatial_layer(state: ServiceState) -> str:
    """The default layer of the equivariance demonstration: the network's first (conv1)."""
    return spatial_layers(state.artifacts.manifest.layers)[0]


def first_pool_layer(state: ServiceState) -> str:
    """The default layer of the pooling demonstration: the first max pool (pool1)."""
    layers = state.artifacts.manifest.layers
    pools = [layer.name for layer in layers if layer.type == "maxpool"]
    if not pools:
        raise BadInput("the model has no max-pooling layer; pool the image with size instead")
    return pools[0]


def check_model_layer(state: ServiceState, name: str) -> None:
    """400, naming the valid layers, unless `name` is a layer of the model with a map."""
    layer_footprint(state.artifacts.manifest.layers, name)


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
    runs = await _off_loop(state, partial(_compare_all, maps, plans))
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

    runs = await _off_loop(state, work)
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


@dataclass(frozen=True)
class PoolLayer:
    """A max-pooling layer of the model and the layer whose map it reads."""

    name: str
    input_layer: str
    jump: int  # image pixels per unit of the map it reads
    size: int
    stride: int


@dataclass(frozen=True)
class ModelPool:
    """A model's pooling layer as run: the layer and its own output."""

    layer: PoolLayer
    pooled: FloatArray


def pool_layer(state: ServiceState, name: str) -> PoolLayer:
    """The model's max-pooling layer called `name`; 400, naming the valid ones, otherwise."""
    layers = state.artifacts.manifest.layers
    pools = [layer.name for layer in layers if layer.type == "maxpool"]
    index = next((i for i, layer in enumerate(layers) if layer.name == name), None)
    if index is None or layers[index].type != "maxpool":
        what = "unknown layer" if index is None else "not a max-pooling layer:"
        raise BadInput(f"{what} {name}; the model's max-pooling layers: {', '.join(pools)}")
    row = layers[index]
    if index == 0 or row.padding or layers[index - 1].type == "fc":
        raise BadInput(f"{name} does not pool a layer's map without padding; try {pools[0]}")
    before = layers[index - 1]
    return PoolLayer(name, before.name, before.jump, row.kernel, row.stride)


async def model_pooling(
    state: ServiceState,
    tensor: FloatArray,
    pool: PoolLayer,
    *,
    max_shift: int,
    direction: Direction,
) -> PoolingResponse:
    """Run the model once for the pooling layer and the map it reads, then shift and pool."""
    batcher = state.require_batcher()
    (output,) = await batcher.submit(
        [tensor], (pool.input_layer, pool.name), timeout_s=state.settings.request_timeout_s
    )
    model = ModelPool(pool, output[pool.name])
    return await pooling(
        state,
        output[pool.input_layer],
        size=pool.size,
        stride=pool.stride,
        max_shift=max_shift,
        direction=direction,
        model=model,
    )


async def pooling(
    state: ServiceState,
    feature: FloatArray,
    *,
    size: int,
    stride: int,
    max_shift: int,
    direction: Direction,
    model: ModelPool | None = None,
) -> PoolingResponse:
    """Pool `feature` and its shifted copies; with `model`, check the pooling against it."""
    engine = state.require_filters().pooling

    def work() -> tuple[list[PoolShift], float | None]:
        shifts = pooling_invariance(
            feature,
            size=size,
            stride=stride,
            max_shift=max_shift,
            direction=direction,
            engine=engine,
        )
        if model is None:
            return shifts, None
        ours = engine.pool(feature, op="max", size=size, stride=stride)
        if ours.shape != model.pooled.shape:
            raise BadInput(
                f"{model.layer.name} is not a plain max pool of {model.layer.input_layer}: shapes "
                f"{list(model.pooled.shape)} and {list(ours.shape)}"
            )
        return shifts, float(np.abs(ours.astype(np.float64) - model.pooled).max())

    shifts, difference = await _off_loop(state, work)
    return PoolingResponse(
        source="image" if model is None else "model",
        layer=None if model is None else model.layer.name,
        input_layer=None if model is None else model.layer.input_layer,
        provider=engine.providers[0],
        map_shape=list(feature.shape),
        size=size,
        stride=stride,
        pixels_per_step=1 if model is None else model.layer.jump,
        model_max_abs_difference=difference,
        direction=direction,
        shifts=[PoolShiftResult.model_validate(shift, from_attributes=True) for shift in shifts],
    )


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


async def _off_loop(state: ServiceState, work: Callable[[], T]) -> T:
    """Numpy work of a request on the decode pool, so the event loop keeps serving."""
    return await asyncio.get_running_loop().run_in_executor(state.decode_pool, work)
