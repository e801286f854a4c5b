"""KServe's v1 data plane, so KServe's SDK (`InferenceRESTClient`, protocol v1) works unchanged.

`GET /v1/models`, `GET /v1/models/{name}` (`{"name", "ready"}`, 503 when not ready),
`POST /v1/models/{name}:predict` (service/kserve_instances.py: encoded images or
preprocessed tensors) and `:explain` (occlusion or Grad-CAM, service/explanations.py).
The models are the v2 model views; requests share the batcher and count in the views'
statistics. Liveness (`GET /`) is the page router's. Errors are `{"error": "..."}` like
KServe's own (service/errors.py).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from core.errors import one_line
from service.batcher import RequestTiming
from service.classify import top_k
from service.errors import BadInput
from service.explanations import (
    Gradcam,
    Occlusion,
    choose_class,
    gradcam,
    occlusion,
    occlusion_grid,
)
from service.kserve_instances import Key, PredictRequest, parse_predict_request
from service.routers.predict import Prediction
from service.state import ServiceState, StateDep
from service.v2.codec import decompress
from service.v2.infer import preprocess_images
from service.v2.views import ModelView, find_view, is_available, serving_view, view_names

router = APIRouter(prefix="/v1/models", tags=["v1 (KServe)"])

EXPLAIN_OPTIONS = ("method", "class", "layer", "patch", "stride")


def _instances_body(**properties: Any) -> dict[str, Any]:
    """OpenAPI for a JSON body of `instances` and the named options (the handlers read raw JSON)."""
    schema = {
        "type": "object",
        "required": ["instances"],
        "properties": {"instances": {"type": "array", "minItems": 1}, **properties},
    }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


EXPLAIN_BODY = _instances_body(
    method={"enum": ["occlusion", "gradcam", "gradcam++"]},
    layer={"type": "string"},
    patch={"type": "integer", "minimum": 1},
    stride={"type": "integer", "minimum": 1},
    **{"class": {"type": ["string", "integer"]}},
)
PREDICT_BODY = _instances_body(top_k={"type": "integer", "minimum": 1, "maximum": 1000})


class ModelList(BaseModel):
    models: list[str]


class ModelStatus(BaseModel):
    name: str
    ready: bool


class InstancePrediction(BaseModel):
    key: Key | None = None  # the instance's own, when it had one
    label: str
    index: int
    probability: float
    top_k: list[Prediction]


class PredictResponse(BaseModel):
    predictions: list[InstancePrediction]


class ExplainOptions(BaseModel):
    """The fields of an `:explain` body besides `instances` (as /v1/explain/* takes them)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    method: Literal["occlusion", "gradcam", "gradcam++"] = "occlusion"
    target: str | int | None = Field(None, alias="class")
    layer: str = "conv5"
    patch: int = Field(48, ge=1)
    stride: int = Field(24, ge=1)


class InstanceExplanation(BaseModel):
    key: Key | None = None  # the instance's own, when it had one
    method: str
    occlusion: Occlusion | None = None
    gradcam: Gradcam | None = None


class ExplainResponse(BaseModel):
    explanations: list[InstanceExplanation]


@router.get("")
async def list_models(state: StateDep) -> ModelList:
    """The models (the v2 model views) this server serves."""
    return ModelList(models=view_names(state.settings.model_name))


@router.get(
    "/{name}",
    response_model=ModelStatus,
    responses={503: {"model": ModelStatus, "description": "loading, draining or unloaded"}},
)
async def model_status(state: StateDep, name: str) -> JSONResponse:
    """`{"name", "ready"}`: 200 when the model takes requests, 503 when it does not."""
    view = find_view(state, name)
    ready = state.ready and not state.draining and is_available(state, view)
    return JSONResponse({"name": view.name, "ready": ready}, status_code=200 if ready else 503)


@router.post(
    "/{name}:predict",
    response_model=PredictResponse,
    response_model_exclude_none=True,
    openapi_extra=PREDICT_BODY,
)
async def predict(request: Request, state: StateDep, name: str) -> PredictResponse:
    """Ranked labels per instance, in order: top-1 and the `top_k` best (default 5)."""
    started = time.perf_counter_ns()
    view = serving_view(state, name)
    try:
        return await _predict(request, state, view, started)
    except Exception:
        state.statistics.record_failure(view.key, time.perf_counter_ns() - started)
        raise


@router.post(
    "/{name}:explain",
    response_model=ExplainResponse,
    response_model_exclude_none=True,
    openapi_extra=EXPLAIN_BODY,
)
async def explain(request: Request, state: StateDep, name: str) -> ExplainResponse:
    """Occlusion (default) or Grad-CAM per instance, as POST /v1/explain/* answers them.

    Besides `instances`, the body may carry `method` (occlusion, gradcam, gradcam++),
    `class`, and `layer` (Grad-CAM) or `patch` and `stride` (occlusion).
    """
    view = serving_view(state, name)
    raw = await request.body()  # its size is bounded by the body-limit middleware
    parsed = await asyncio.to_thread(
        _parse, raw, request.headers.get("content-encoding"), state, view, EXPLAIN_OPTIONS
    )
    try:
        options = ExplainOptions.model_validate(parsed.options)
    except ValidationError as exc:
        raise BadInput(one_line(exc)) from None
    target = choose_class(options.target, state.artifacts.labels)
    grid = occlusion_grid(state, options.patch, options.stride)
    tensors = await _tensors(parsed, state, view)
    answers = []
    for instance, tensor in zip(parsed.instances, tensors, strict=True):
        if options.method == "occlusion":
            found = await occlusion(state, tensor, target, grid)
            answers.append(
                InstanceExplanation(key=instance.key, method="occlusion", occlusion=found)
            )
        else:
            cam = await gradcam(state, tensor, target, options.layer, options.method)
            answers.append(
                InstanceExplanation(key=instance.key, method=options.method, gradcam=cam)
            )
    return ExplainResponse(explanations=answers)


async def _predict(
    request: Request, state: ServiceState, view: ModelView, started: int
) -> PredictResponse:
    batcher = state.require_batcher()
    raw = await request.body()  # its size is bounded by the body-limit middleware
    received = time.perf_counter_ns()
    parsed = await asyncio.to_thread(
        _parse, raw, request.headers.get("content-encoding"), state, view
    )
    tensors = await _tensors(parsed, state, view)
    prepared = time.perf_counter_ns()
    timing = RequestTiming(view.key)
    results = await batcher.submit(
        tensors,
        ("logits",),
        timeout_s=state.settings.request_timeout_s,
        run=view.engine.run,
        timing=timing,
    )
    answered = time.perf_counter_ns()
    labels = view.engine.artifacts.labels
    predictions = []
    for instance, result in zip(parsed.instances, results, strict=True):
        ranked = top_k(result["logits"], labels, parsed.top_k)
        predictions.append(
            InstancePrediction.model_validate({"key": instance.key, **ranked[0], "top_k": ranked})
        )
    done = time.perf_counter_ns()
    state.statistics.record_success(
        timing, input_ns=prepared - received, output_ns=done - answered, total_ns=done - started
    )
    return PredictResponse(predictions=predictions)


def _parse(
    raw: bytes,
    encoding: str | None,
    state: ServiceState,
    view: ModelView,
    allowed: tuple[str, ...] = ("top_k",),
) -> PredictRequest:
    settings = state.settings
    body = decompress(raw, encoding, settings.max_v2_body_bytes)
    shape = view.engine.artifacts.input_shape
    return parse_predict_request(
        body, input_shape=shape, max_instances=settings.max_files, allowed=allowed
    )


async def _tensors(
    parsed: PredictRequest, state: ServiceState, view: ModelView
) -> list[np.ndarray]:
    """Every instance as a model input tensor, in order; images decoded on the decode pool."""
    images = {i: x.image for i, x in enumerate(parsed.instances) if x.image is not None}
    names = [f"instance {i}" for i in images]
    decoded = await preprocess_images(list(images.values()), names, state, view)
    tensors = dict(zip(images, decoded, strict=True))
    return [
        tensors[i] if instance.tensor is None else instance.tensor
        for i, instance in enumerate(parsed.instances)
    ]
