"""Occlusion and Grad-CAM for one preprocessed image: what /v1/explain and KServe's :explain share.

Occlusion runs the model on occluded copies through the batcher's background lane;
Grad-CAM runs the export's gradient graph as a background job on the inference
thread. Both return the map as numbers (pydantic models the routes answer as they are).
"""

from __future__ import annotations

from functools import partial
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from service.batcher import Lane
from service.classify import softmax
from service.errors import BadInput, OverLimit
from service.numerics.gradcam import gradcam_map, gradcam_plus_plus_map, normalise_map
from service.numerics.occlusion import OcclusionGrid, occluded_copies, sensitivity
from service.routers.predict import Prediction
from service.state import ServiceState

Method = Literal["gradcam", "gradcam++"]


class Occlusion(BaseModel):
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


class Gradcam(BaseModel):
    model: str
    target: Prediction = Field(
        serialization_alias="class",
        description="the class explained (probability from the fp32 gradient graph)",
    )
    layer: str
    method: Method
    heatmap: list[list[float]] = Field(
        description="the map at the layer's resolution, scaled to 0..1 (0 everywhere when "
        "no position of the layer raises the class score)"
    )
    peak: float = Field(description="the map's largest value before scaling")
    receptive_field: int = Field(description="input pixels one unit of the layer sees")
    jump: int = Field(description="input pixels between neighbouring units")


def choose_class(text: str | int | None, labels: list[str]) -> int | None:
    """A class index given as a number or a label; None for the default."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, str):
        text = text.strip()
        if text in labels:
            return labels.index(text)
        if not text.lstrip("-").isdigit():
            raise BadInput(f"unknown class {text!r}: give an index 0..{len(labels) - 1} or a label")
    index = int(text)
    if 0 <= index < len(labels):
        return index
    raise BadInput(f"class {index} is out of range: the model has classes 0..{len(labels) - 1}")


def occlusion_grid(state: ServiceState, patch: int, stride: int) -> OcclusionGrid:
    """The grid, refused (422) when it would cost more forward passes than allowed."""
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
    return grid


async def occlusion(
    state: ServiceState, tensor: np.ndarray, target: int | None, grid: OcclusionGrid
) -> Occlusion:
    """The drop in the class probability when each window of the input is covered."""
    labels = state.artifacts.labels
    results = await state.require_batcher().submit(
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
    return Occlusion(
        model=state.artifacts.manifest.name,
        target=_prediction(probabilities[0], target, labels),
        patch=grid.patch,
        stride=grid.stride,
        starts=grid.starts,
        heatmap=drops.tolist(),
        forward_passes=grid.windows + 1,
    )


async def gradcam(
    state: ServiceState, tensor: np.ndarray, target: int | None, layer: str, method: Method
) -> Gradcam:
    """A layer's maps weighed by the exact gradient of the class score (default: the top-1)."""
    batcher, explainer = state.require_batcher(), state.require_explainer()
    explainer.check_layer(layer)
    labels = state.artifacts.labels
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
    row = state.artifacts.manifest.layer(layer)
    assert row is not None  # check_layer: the gradient graph's layers are the model's
    return Gradcam(
        model=state.artifacts.manifest.name,
        target=_prediction(softmax(gradients.logits), target, labels),
        layer=layer,
        method=method,
        heatmap=normalise_map(cam).tolist(),
        peak=float(cam.max()),
        receptive_field=row.receptive_field,
        jump=row.jump,
    )


def _prediction(probabilities: np.ndarray, index: int, labels: list[str]) -> Prediction:
    return Prediction(label=labels[index], index=index, probability=float(probabilities[index]))
