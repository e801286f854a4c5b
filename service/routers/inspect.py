"""POST /v1/activations: look inside the network for one uploaded image."""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from service.errors import BadInput, TooLarge
from service.numerics.statistics import summarise, top_channels
from service.pictures import feature_grid_png
from service.state import StateDep
from service.uploads import preprocess_uploads, read_uploads

router = APIRouter(prefix="/v1", tags=["inspect"])
TOP_CHANNELS = 5


def parse_layers(text: str | None, known: list[str], limit: int) -> list[str]:
    """A comma list of layer names (default: all), checked against the model's."""
    if text is None or not text.strip():
        return list(known)
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in known]
    if unknown:
        raise BadInput(f"unknown layer {', '.join(unknown)}; valid layers: {', '.join(known)}")
    if len(names) > limit:
        raise TooLarge(f"{len(names)} layers asked for; the limit is {limit}")
    return list(dict.fromkeys(names))  # order kept, duplicates dropped


def parse_channels(text: str | None, count: int) -> list[int]:
    """A comma list of channel indices (default: all), each in range."""
    if text is None or not text.strip():
        return list(range(count))
    try:
        channels = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise BadInput(f"channels must be comma-separated integers, got {text!r}") from None
    bad = [c for c in channels if not 0 <= c < count]
    if bad or not channels:
        raise BadInput(f"channels must lie in 0..{count - 1}; got {bad or text!r}")
    return channels


@router.post(
    "/activations",
    response_model=None,
    responses={
        200: {"content": {"application/json": {}, "image/png": {}, "application/x-npz": {}}}
    },
)
async def activations(
    state: StateDep,
    image: Annotated[UploadFile, File(description="one image file")],
    layers: Annotated[str | None, Form(description="comma list; default all")] = None,
    format: Annotated[Literal["json", "npz", "png"], Form()] = "json",
    channels: Annotated[str | None, Form(description="png: comma list of channels")] = None,
) -> Response | dict[str, Any]:
    """Statistics (json), raw float32 arrays (npz) or a feature-map grid (png) per layer."""
    batcher = state.require_batcher()
    known = state.artifacts.layer_names
    names = parse_layers(layers, known, state.settings.max_layers)
    if format == "png" and len(names) != 1:
        raise BadInput(
            f"format=png draws one layer; name it in 'layers' (one of {', '.join(known)})"
        )
    blobs = await read_uploads([image], state)
    (tensor,) = await preprocess_uploads([image], blobs, state)
    (result,) = await batcher.submit(
        [tensor], tuple(names), timeout_s=state.settings.request_timeout_s
    )
    if format == "npz":
        buffer = io.BytesIO()
        np.savez(buffer, **result)  # type: ignore[arg-type]
        return Response(
            buffer.getvalue(),
            media_type="application/x-npz",
            headers={"Content-Disposition": 'attachment; filename="activations.npz"'},
        )
    if format == "png":
        activation = result[names[0]]
        chosen = parse_channels(channels, activation.shape[0]) if activation.ndim == 3 else []
        return Response(feature_grid_png(activation, chosen), media_type="image/png")
    return {
        "model": state.artifacts.manifest.name,
        "input_shape": state.artifacts.input_shape,
        "layers": {
            name: {
                "shape": list(array.shape),
                **summarise(array),
                "top_channels": top_channels(array, TOP_CHANNELS),
            }
            for name, array in result.items()
        },
    }
