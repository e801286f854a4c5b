"""POST /v1/explain/occlusion and /v1/explain/gradcam: why the network chose a class.

Occlusion slides a mean-colour patch over the input and reruns the model (forward
passes only, through the batcher's background lane); Grad-CAM weighs a layer's maps
by the exact gradient of the class score, from the export's gradient graph
(service/explanations.py does both). Both answer a heat map in JSON, or laid over the
network's input crop as a PNG.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel

from core.preprocess import input_pixels
from service.explanations import (
    Gradcam,
    Method,
    Occlusion,
    choose_class,
    gradcam,
    occlusion,
    occlusion_grid,
)
from service.numerics.gradcam import upsample
from service.numerics.occlusion import pixel_map
from service.pictures import heat_overlay_png
from service.state import ServiceState, StateDep
from service.uploads import preprocess_uploads, read_uploads

router = APIRouter(prefix="/v1/explain", tags=["explain"])
ClassField = Annotated[
    str | None,
    Form(alias="class", description="class index or label to explain; default: the top-1"),
]
Format = Annotated[Literal["json", "png"], Form(description="png: the map over the input crop")]


def _documented(model: type[BaseModel]) -> dict[int | str, dict[str, object]]:
    return {200: {"model": model, "content": {"image/png": {}}}}


async def _input(image: UploadFile, state: ServiceState) -> np.ndarray:
    blobs = await read_uploads([image], state)
    (tensor,) = await preprocess_uploads([image], blobs, state)
    return tensor


def _png(tensor: np.ndarray, heat: np.ndarray, state: ServiceState) -> Response:
    picture = input_pixels(tensor, state.artifacts.preprocess)
    return Response(heat_overlay_png(picture, heat), media_type="image/png")


@router.post("/occlusion", response_model=None, responses=_documented(Occlusion))
async def explain_occlusion(
    state: StateDep,
    image: Annotated[UploadFile, File(description="one image file")],
    class_: ClassField = None,
    patch: Annotated[int, Form(ge=1, description="side of the occluding square")] = 48,
    stride: Annotated[int, Form(ge=1, description="pixels between windows")] = 24,
    format: Format = "json",
) -> Occlusion | Response:
    """The drop in the class probability when each region of the input is covered."""
    state.require_batcher()
    target = choose_class(class_, state.artifacts.labels)
    grid = occlusion_grid(state, patch, stride)
    tensor = await _input(image, state)
    answer = await occlusion(state, tensor, target, grid)
    if format == "json":
        return answer
    heat = pixel_map(np.array(answer.heatmap), grid)
    return _png(tensor, heat / max(float(heat.max()), 1e-12), state)


@router.post("/gradcam", response_model=None, responses=_documented(Gradcam))
async def explain_gradcam(
    state: StateDep,
    image: Annotated[UploadFile, File(description="one image file")],
    class_: ClassField = None,
    layer: Annotated[str, Form(description="a conv, pool or norm layer")] = "conv5",
    method: Annotated[Method, Form()] = "gradcam",
    format: Format = "json",
) -> Gradcam | Response:
    """Grad-CAM: a layer's maps weighed by the exact gradient of the class score."""
    state.require_explainer().check_layer(layer)
    target = choose_class(class_, state.artifacts.labels)
    tensor = await _input(image, state)
    answer = await gradcam(state, tensor, target, layer, method)
    if format == "json":
        return answer
    return _png(tensor, upsample(np.array(answer.heatmap, np.float32), tensor.shape[-1]), state)
