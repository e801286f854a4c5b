"""GET /v1/layers/{name}/filters.png: a first layer's learned filters as small colour images.

The weights are read from the fp32 ONNX file's initializers (`<layer>.weight`)
with onnx, not through onnxruntime (which does not expose them) and never with
torch. Parsing the file costs a second copy of the model in memory for a moment,
so it happens once, on the first request, off the event loop, and only the PNG is
kept.
"""

from __future__ import annotations

import asyncio
import io
import math
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter
from fastapi.responses import Response
from PIL import Image

from service.errors import BadInput, NotFound
from service.state import StateDep

router = APIRouter(prefix="/v1", tags=["inspect"])
GAP = 2
MIN_CELL = 40
MAX_COLUMNS = 16
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


def filters_grid(weights: npt.NDArray[np.float32]) -> Image.Image:
    """(C, 3, k, k) weights as a grid of RGB tiles, each filter scaled to 0-255 on its own."""
    count, _, kh, kw = weights.shape
    flat = weights.reshape(count, -1)
    low = flat.min(axis=1)[:, None, None, None]
    span = np.maximum(flat.max(axis=1) - flat.min(axis=1), 1e-12)[:, None, None, None]
    tiles = np.rint((weights - low) / span * 255).astype(np.uint8).transpose(0, 2, 3, 1)
    zoom = max(1, math.ceil(MIN_CELL / max(kh, kw)))
    cell_h, cell_w = kh * zoom, kw * zoom
    columns = min(MAX_COLUMNS, count)
    rows = math.ceil(count / columns)
    canvas = Image.new(
        "RGB", (columns * (cell_w + GAP) + GAP, rows * (cell_h + GAP) + GAP), color=(40, 40, 40)
    )
    for index, tile in enumerate(tiles):
        row, column = divmod(index, columns)
        picture = Image.fromarray(tile).resize((cell_w, cell_h), Image.Resampling.NEAREST)
        canvas.paste(picture, (GAP + column * (cell_w + GAP), GAP + row * (cell_h + GAP)))
    return canvas


@lru_cache(maxsize=4)
def filters_png(model_path: Path, layer: str) -> bytes:
    """The PNG of `layer`'s filters in the model file, computed once per file and layer."""
    weights = read_initializer(model_path, f"{layer}.weight")
    if weights.ndim != 4 or weights.shape[1] != 3:
        raise BadInput(f"{layer}'s filters are not RGB images (weights {list(weights.shape)})")
    buffer = io.BytesIO()
    filters_grid(weights).save(buffer, format="PNG")
    return buffer.getvalue()


def _locked_filters_png(model_path: Path, layer: str) -> bytes:
    with _load_lock:
        return filters_png(model_path, layer)


@router.get(
    "/layers/{name}/filters.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def layer_filters(state: StateDep, name: str) -> Response:
    """The learned filters of a layer that sees the RGB image (conv1), as colour tiles."""
    artifacts = state.artifacts
    layers = {layer["name"]: layer for layer in artifacts.manifest["layers"]}
    if name not in layers:
        raise NotFound(f"unknown layer {name}; valid layers: {', '.join(layers)}")
    layer = layers[name]
    if layer["type"] != "conv" or layer["in_channels"] // layer["groups"] != 3:
        first = [n for n, row in layers.items() if row["type"] == "conv"][:1]
        raise BadInput(
            f"only a convolution that sees the RGB image has colour filters: "
            f"{', '.join(first)}, not {name}"
        )
    files = artifacts.manifest["files"]
    # The int8 and fp16 files hold quantised or half weights; the fp32 file holds the real ones.
    path = artifacts.folder / files["fp32"]["path"] if "fp32" in files else artifacts.model_path
    png = await asyncio.to_thread(_locked_filters_png, path, name)
    return Response(png, media_type="image/png")
