"""GET /v1/layers/{name}/filters.png: a first layer's learned filters as small colour images.

The weights are read from the fp32 ONNX file's initializers (`<layer>.weight`)
with onnx, not through onnxruntime (which does not expose them) and never with
torch. Parsing the file costs a second copy of the model in memory for a moment,
so it happens once, on the first request, off the event loop, and only that layer's
weights are kept.
"""

from __future__ import annotations

import asyncio
import threading
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Query
from fastapi.responses import Response

from service.errors import BadInput, NotFound
from service.pictures import filters_png
from service.state import StateDep

router = APIRouter(prefix="/v1", tags=["inspect"])
_load_lock = threading.Lock()  # two first requests must not parse the model twice


def read_initializer(model_path: Path, name: str) -> npt.NDArray[np.float32]:
    """The float initializer called `name` in an ONNX file, as float32."""
    import onnx  # heavy: only this route needs it
    from onnx import numpy_helper

    model = onnx.load(str(model_path))
    for tensor in model.graph.initializer:
        if tensor.name == name:
            return np.asarray(numpy_helper.to_array(tensor), dtype=np.float32)
    raise NotFound(f"{model_path.name} has no initializer {name}")


@lru_cache(maxsize=4)
def layer_filters(model_path: Path, layer: str) -> npt.NDArray[np.float32]:
    """`layer`'s RGB filters in the model file, read once per file and layer."""
    weights = read_initializer(model_path, f"{layer}.weight")
    if weights.ndim != 4 or weights.shape[1] != 3:
        raise BadInput(f"{layer}'s filters are not RGB images (weights {list(weights.shape)})")
    return weights


def _filters_png(model_path: Path, layer: str, channel: int | None) -> bytes:
    with _load_lock:
        weights = layer_filters(model_path, layer)
    if channel is None:
        return filters_png(weights)
    if channel >= len(weights):
        raise NotFound(f"{layer} has channels 0..{len(weights) - 1}, not {channel}")
    return filters_png(weights[channel : channel + 1])


@router.get(
    "/layers/{name}/filters.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def filters(
    state: StateDep,
    name: str,
    channel: Annotated[int | None, Query(ge=0, description="one filter alone")] = None,
) -> Response:
    """The learned filters of a layer that sees the RGB image (conv1), as colour tiles."""
    manifest = state.artifacts.manifest
    layer = manifest.layer(name)
    if layer is None:
        raise NotFound(f"unknown layer {name}; valid layers: {', '.join(manifest.layer_names)}")
    if layer.type != "conv" or layer.in_channels // layer.groups != 3:
        first = [row.name for row in manifest.layers if row.type == "conv"][:1]
        raise BadInput(
            f"only a convolution that sees the RGB image has colour filters: "
            f"{', '.join(first)}, not {name}"
        )
    png = await asyncio.to_thread(_filters_png, state.artifacts.fp32_path, name, channel)
    return Response(png, media_type="image/png")
