"""POST /v1/explain/occlusion and /v1/explain/gradcam: why the network chose a class.

Occlusion slides a mean-colour patch over the input and reruns the model (forward
passes only, through the batcher's background lane); Grad-CAM weighs a layer's maps
by the exact gradient of the class score, from the export's gradient graph. Both
answer a heat map in JSON, or laid over the network's input crop as a PNG.
"""

from __future__ import annotations

from functools import partial
from typing import Annotated, Literal

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, Field

from core.preprocess import input_pixels
from service.batcher import Lane
from service.classify import softmax
from service.errors import BadInput, OverLimit
from service.numerics.gradcam import gradcam_map, gradcam_plus_plus_map, normalise_map, upsample
from service.numerics.occlusion import OcclusionGrid, occluded_copies, pixel_map, sensitivity
from service.pictures import heat_overlay_png
from service.routers.predict import Prediction
from service.state import ServiceState, StateDep
from service.uploads import preprocess_uploads, read_uploads

router = APIRouter(prefix="/v1/explain", tags=["explain"])
ClassField = Annotated[
    str | None,
    Form(alias="class", description="class index or label to explain; default: the top-1"),
]
Format = Annotated[Literal["json", "png"], Form(description="png: the map over the input crop")]


class OcclusionResponse(BaseModel):
    model: str
    target: Prediction = Field(
        serialization_alias="class", description="the class explained, on the whole image"
    )
    patch: int = Field(description="side of the mean-colour square, input pixels")
    stride: int = Field(description="pixels between neighbouring windows")
    starts: list[int] = Field(
        description="window offsets along each axis (the last flush with the edge): "
        "heatmap[r][c] is the window at rows starts[r]..+patch, columns starts[c]..+patch"
    )
    heatmap: list[list[float]] = Field(
        description="drop of the class probability when that window is covered "
        "(negative: covering it made the class more likely)"
    )
    forward_passes: int = Field(description="windows + the unoccluded image")


class GradcamResponse(BaseModel):
    model: str
    target: Prediction = Field(
        serialization_alias="class",
        description="the class explained (probability from the fp32 gradient graph)",
    )
    layer: str
    method: Literal["gradcam", "gradcam++"]
    heatmap: list[list[float]] = Field(
        description="the map at the layer's resolution, scaled to 0..1 (0 everywhere when "
        "no position of the layer raises the class score)"
    )
    peak: float = Field(description="the map's largest value before scaling")
    receptive_field: int = Field(description="input pixels one unit of the layer sees")
    jump: int = Field(description="input pixels between neighbouring units")


def choose_class(text: str | None, labels: list[str]) -> int | None:
    """A class index given as a number or a label; None for the default."""
    if text is None or not text.strip():
        return None
    text = text.strip()
    if text in labels:
        return labels.index(text)
    if text.lstrip("-").isdigit():
        index = int(text)
        if 0 <= index < len(labels):
            return index
        raise BadInput(f"class {index} is out of range: the model has classes 0..{len(labels) - 1}")
    raise BadInput(f"unknown class {text!r}: give an index 0..{len(labels) - 1} or a label")


async def _input(image: UploadFile, state: ServiceState) -> np.ndarray:
    blobs = await read_uploads([image], state)
    (tensor,) = await preprocess_uploads([image], blobs, state)
    return tensor


def _prediction(probabilities: np.ndarray, index: int, labels: list[str]) -> Prediction:
    return Prediction(label=labels[index], index=index, probability=float(probabilities[index]))


def _png(tensor: np.ndarray, heat: np.ndarray, state: ServiceState) -> Response:
    picture = input_pixels(tensor, state.artifacts.preprocess)
    return Response(heat_overlay_png(picture, heat), media_type="image/png")


def _documented(model: type[BaseModel]) -> dict[int | str, dict[str, object]]:
    return {200: {"model": model, "content": {"image/png": {}}}}


@router.post("/occlusion", response_model=None, responses=_documented(OcclusionResponse))
async def occlusion(
    state: StateDep,
    image: Annotated[UploadFile, File(description="one image file")],
    class_: ClassField = None,
    patch: Annotated[int, Form(ge=1, description="side of the occluding square")] = 48,
    stride: Annotated[int, Form(ge=1, description="pixels between windows")] = 24,
    format: Format = "json",
) -> OcclusionResponse | Response:
    """The drop in the class probability when each region of the input is covered."""
    batcher = state.require_batcher()
    labels = state.artifacts.labels
    target = choose_class(class_, labels)
    grid = OcclusionGrid(state.artifacts.input_shape[-1], patch, stride)
    passes = grid.windows + 1
    settings = state.settings
    limit, setting = min(
        (settings.max_occlusion_passes, "ALEXNET_MAX_OCCLUSION_PASSES"),
        (settings.max_queue, "ALEXNET_MAX_QUEUE"),  # all passes are queued at once
    )
    if passes > limit:
        raise OverLimit(
            f"a {patch}-pixel patch every {stride} pixels costs {passes} forward passes; the "
            f"limit is {limit} ({setting}): use a larger stride or patch"
        )
    tensor = await _input(image, state)
    results = await batcher.submit(
        [tensor, *occluded_copies(tensor, grid)],
        ("logits",),
        timeout_s=state.settings.request_timeout_s,
        lane=Lane.BACKGROUND,
    )
    probabilities = [softmax(result["logits"]) for result in results]
    target = int(np.argmax(probabilities[0])) if target is None else target
    drops = sensitivity(
        probabilities[0][target], np.array([p[target] for p in probabilities[1:]]), grid
    )
    if format == "png":
        heat = pixel_map(drops, grid)
        return _png(tensor, heat / max(float(heat.max()), 1e-12), state)
    return OcclusionResponse(
        model=state.artifacts.manifest.name,
        target=_prediction(probabilities[0], target, labels),
        patch=patch,
        stride=stride,
        starts=grid.starts,
        heatmap=drops.tolist(),
        forward_passes=passes,
    )


@router.post("/gradcam", response_model=None, responses=_documented(GradcamResponse))
async def gradcam(
    state: StateDep,
    image: Annotated[UploadFile, File(description="one image file")],
    class_: ClassField = None,
    layer: Annotated[str, Form(description="a conv, pool or norm layer")] = "conv5",
    method: Annotated[Literal["gradcam", "gradcam++"], Form()] = "gradcam",
    format: Format = "json",
) -> GradcamResponse | Response:
    """Grad-CAM: a layer's maps weighed by the exact gradient of the class score."""
    batcher, explainer = state.require_batcher(), state.require_explainer()
    labels = state.artifacts.labels
    target = choose_class(class_, labels)
    explainer.check_layer(layer)
    tensor = await _input(image, state)
    timeout = state.settings.request_timeout_s
    if target is None:  # the class the served model predicts
        (result,) = await batcher.submit([tensor], ("logits",), timeout_s=timeout)
        target = int(np.argmax(result["logits"]))
    weights = np.zeros(len(labels), np.float32)
    weights[target] = 1.0
    gradients = await batcher.run_job(
        partial(explainer.layer_gradient, tensor, weights, layer), timeout_s=timeout
    )
    combine = gradcam_map if method == "gradcam" else gradcam_plus_plus_map
    cam = combine(gradients.activation, gradients.gradient)
    scaled = normalise_map(cam)
    if format == "png":
        return _png(tensor, upsample(scaled, tensor.shape[-1]), state)
    row = state.artifacts.manifest.layer(layer)
    assert row is not None  # check_layer: the explain graph's layers are the model's
    return GradcamResponse(
        model=state.artifacts.manifest.name,
        target=_prediction(softmax(gradients.logits), target, labels),
        layer=layer,
        method=method,
        heatmap=scaled.tolist(),
        peak=float(cam.max()),
        receptive_field=row.receptive_field,
        jump=row.jump,
    )
