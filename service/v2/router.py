"""The Open Inference Protocol (KServe v2) over HTTP, so tritonclient and KServe work unchanged.

Health, server and model metadata, and inference with JSON tensors or the binary
tensor extension (the codec is service/v2/codec.py). Inference runs through the
same dynamic batcher as /v1/predict. The model's one input, `input`, takes FP32
tensors [N, 3, H, W] already preprocessed as the manifest says or, as an
extension, BYTES of encoded images (shape [N] or [N, 1]) that are preprocessed
here. Errors answer the protocol's {"error": "..."} (service/errors.py does that).
"""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from service.engine import Engine, TensorInfo
from service.errors import BadInput, NotFound, TooLarge
from service.state import ServiceState, StateDep
from service.uploads import preprocess_blobs
from service.v2.codec import (
    InferRequest,
    RequestedOutput,
    classify,
    decompress,
    encode_infer_response,
    parse_infer_request,
)

router = APIRouter(prefix="/v2", tags=["v2 (KServe)"])

SERVER_NAME = "alexnet-serving"
PLATFORM = "onnxruntime_onnx"
EXTENSIONS = ["binary_tensor_data", "classification"]
HEADER_LENGTH = "Inference-Header-Content-Length"
NOT_READY: dict[int | str, dict[str, Any]] = {503: {"description": "not ready"}}


def _model(state: ServiceState, name: str, version: str | None) -> Engine:
    """The engine when `name` (and `version`, if given) is the model served; else 404."""
    served = state.settings.model_name
    if name != served:
        raise NotFound(f"unknown model '{name}'; this server serves '{served}'")
    engine = state.require_engine()
    current = _version(engine)
    if version is not None and version != current:
        raise NotFound(
            f"unknown version '{version}' of model '{name}'; the version served is '{current}'"
        )
    return engine


def _version(engine: Engine) -> str:
    return engine.artifacts.manifest.version


def _ready(state: ServiceState) -> bool:
    return state.ready and not state.draining


@router.get("")
async def server_metadata(request: Request) -> dict[str, Any]:
    """Server name, version and the protocol extensions it speaks."""
    return {"name": SERVER_NAME, "version": request.app.version, "extensions": EXTENSIONS}


@router.get("/health/live")
async def server_live() -> dict[str, bool]:
    """200 while the process answers."""
    return {"live": True}


@router.get("/health/ready", responses=NOT_READY)
async def server_ready(state: StateDep) -> JSONResponse:
    """200 once the model is loaded and warmed up; 503 before that and while draining."""
    ready = _ready(state)
    return JSONResponse({"ready": ready}, status_code=200 if ready else 503)


def _tensor_metadata(tensor: TensorInfo) -> dict[str, Any]:
    return {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}


@router.get("/models/{name}")
@router.get("/models/{name}/versions/{version}")
async def model_metadata(state: StateDep, name: str, version: str | None = None) -> dict[str, Any]:
    """Name, versions, platform, and the input and every output (logits and each layer)."""
    engine = _model(state, name, version)
    return {
        "name": name,
        "versions": [_version(engine)],
        "platform": PLATFORM,
        "inputs": [_tensor_metadata(tensor) for tensor in engine.inputs],
        "outputs": [_tensor_metadata(tensor) for tensor in engine.outputs],
    }


@router.get("/models/{name}/ready", responses=NOT_READY)
@router.get("/models/{name}/versions/{version}/ready", responses=NOT_READY)
async def model_ready(state: StateDep, name: str, version: str | None = None) -> JSONResponse:
    """200 when the model can take requests; 503 while it loads or drains."""
    _model(state, name, version)
    ready = _ready(state)
    return JSONResponse({"name": name, "ready": ready}, status_code=200 if ready else 503)


# The body is read raw (tritonclient sends no Content-Type), so the docs describe it here.
INFER_ROUTE: dict[str, Any] = {
    "response_model": None,
    "responses": {200: {"content": {"application/json": {}, "application/octet-stream": {}}}},
    "openapi_extra": {
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            },
        }
    },
}


@router.post("/models/{name}/infer", **INFER_ROUTE)
@router.post("/models/{name}/versions/{version}/infer", **INFER_ROUTE)
async def infer(
    request: Request, state: StateDep, name: str, version: str | None = None
) -> Response:
    """Run FP32 tensors or encoded images; answer the requested outputs (default `logits`)."""
    engine = _model(state, name, version)
    batcher = state.require_batcher()
    settings = state.settings
    raw = await request.body()  # its size is bounded by the body-limit middleware
    # Inflating and parsing megabytes of JSON would stall every other request on the loop.
    parsed = await asyncio.to_thread(
        _parse, raw, request.headers.get("content-encoding"), _header_length(request), state
    )
    wanted = _requested_outputs(parsed, engine)
    tensors = await _model_input(parsed, engine, state)
    names = tuple(dict.fromkeys(output.name for output in wanted))
    results = await batcher.submit(tensors, names, timeout_s=settings.request_timeout_s)
    header: dict[str, Any] = {"model_name": name, "model_version": _version(engine)}
    if parsed.id is not None:
        header["id"] = parsed.id
    content, header_length = await asyncio.to_thread(
        _encode, header, wanted, results, engine.artifacts.labels
    )
    if header_length is None:
        return Response(content, media_type="application/json")
    return Response(
        content, media_type="application/octet-stream", headers={HEADER_LENGTH: str(header_length)}
    )


def _parse(
    raw: bytes, encoding: str | None, header_length: int | None, state: ServiceState
) -> InferRequest:
    limit = state.settings.max_v2_body_bytes
    body = decompress(raw, encoding, limit)
    return parse_infer_request(body, header_length, max_elements=state.settings.max_v2_elements)


def _encode(
    header: dict[str, Any],
    wanted: list[RequestedOutput],
    results: list[dict[str, np.ndarray]],
    labels: list[str],
) -> tuple[bytes, int | None]:
    """Per-image results stacked back into [N, ...] tensors, then the response body."""
    outputs = []
    for output in wanted:
        array = np.stack([result[output.name] for result in results])
        if output.classification:
            # Class labels only mean something on an output with one score per class.
            named = labels if array.ndim == 2 and array.shape[1] == len(labels) else None
            array = classify(array, output.classification, named)
        outputs.append((output.name, array, output.binary))
    return encode_infer_response(header, outputs)


def _header_length(request: Request) -> int | None:
    value = request.headers.get(HEADER_LENGTH)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError:
        raise BadInput(f"{HEADER_LENGTH} must be an integer, got {value!r}") from None


def _requested_outputs(parsed: InferRequest, engine: Engine) -> list[RequestedOutput]:
    """What the client asked for, checked against the graph; `logits` when nothing."""
    if parsed.outputs is None:
        return [RequestedOutput("logits", parsed.binary_output)]
    unknown = [o.name for o in parsed.outputs if o.name not in engine.output_names]
    if unknown:
        raise BadInput(
            f"unknown output {', '.join(unknown)}; this model's outputs are "
            f"{', '.join(engine.output_names)}"
        )
    return parsed.outputs


async def _model_input(
    parsed: InferRequest, engine: Engine, state: ServiceState
) -> list[np.ndarray]:
    """One (3, H, W) float32 tensor per image, from an FP32 or a BYTES input."""
    expected = engine.input_name
    given = [tensor.name for tensor in parsed.inputs]
    if expected not in given:
        raise BadInput(f"missing input '{expected}' (the request has {', '.join(given)})")
    if len(given) > 1:
        raise BadInput(f"the model has one input, '{expected}'; the request has {', '.join(given)}")
    tensor = parsed.inputs[0]
    image_shape = engine.artifacts.input_shape
    shape = list(tensor.data.shape)
    if tensor.datatype == "FP32":
        if len(shape) != 4 or shape[1:] != image_shape or shape[0] == 0:
            raise BadInput(
                f"input '{expected}': an FP32 tensor must have shape "
                f"[N, {', '.join(map(str, image_shape))}] with N >= 1, not {shape}"
            )
        return list(tensor.data)
    if tensor.datatype == "BYTES":
        if len(shape) not in (1, 2) or shape[1:] not in ([], [1]) or shape[0] == 0:
            raise BadInput(
                f"input '{expected}': BYTES of encoded images must have shape [N] "
                f"or [N, 1] with N >= 1, not {shape}"
            )
        per_image = int(np.prod(image_shape))
        if shape[0] * per_image > state.settings.max_v2_elements:
            raise TooLarge(
                f"{shape[0]} images would make {shape[0] * per_image} input "
                f"elements; the limit is {state.settings.max_v2_elements}"
            )
        return await _preprocess_images(list(tensor.data.ravel()), state)
    raise BadInput(
        f"input '{expected}': datatype must be FP32 (a preprocessed tensor) or BYTES "
        f"(encoded images), not {tensor.datatype}"
    )


async def _preprocess_images(blobs: list[bytes], state: ServiceState) -> list[np.ndarray]:
    """Decode and preprocess encoded images on the decode pool, as the manifest says."""
    settings = state.settings
    for index, blob in enumerate(blobs):
        if len(blob) > settings.max_upload_bytes:
            raise TooLarge(
                f"image {index} is larger than the limit of {settings.max_upload_bytes} bytes"
            )
    return await preprocess_blobs(blobs, [f"image {i}" for i in range(len(blobs))], state)
