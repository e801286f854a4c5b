"""Pooling's approximate invariance, measured: shift the map a pooling layer reads, pool again.

The map the model's pooling layer reads (conv1 for pool1) is shifted by 1..k units
and pooled by the PoolingEngine with the layer's own window and stride; that the
engine pools as the network does is checked on every request against the model's
own output (`model_max_abs_difference`). The map is shifted rather than the image
because a one-pixel shift of the image does not shift conv1 at all (stride 4): the
property is about pooling's input. Without a layer, the image's grey pixels are the map.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from service.demo_models import PoolingResponse, PoolShiftResult
from service.demos.layers import PoolLayer
from service.demos.offload import off_loop
from service.errors import BadInput
from service.numerics.invariance import Direction, PoolShift, pooling_invariance
from service.state import ServiceState

FloatArray = npt.NDArray[np.float32]


@dataclass(frozen=True)
class ModelPool:
    """A model's pooling layer as run: the layer and its own output."""

    layer: PoolLayer
    pooled: FloatArray


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

    shifts, difference = await off_loop(state, work)
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
