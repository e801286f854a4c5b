"""POST /v2/models/{name}/infer: JSON or binary tensors through the shared dynamic batcher.

The input, `input`, takes what the model view accepts (service/v2/views.py): FP32
tensors [N, 3, H, W] already preprocessed as the manifest says, or BYTES of encoded
images (shape [N] or [N, 1]) that are preprocessed here. Each request is timed for
Triton's statistics: parsing and preprocessing (compute_input), what the batcher
measured (queue, compute_infer), encoding (compute_output) and the whole (success
or fail).
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response

from service.batcher import RequestTiming
from service.errors import BadInput, TooLarge
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
from service.v2.views import ENCODED_IMAGES, TENSOR, ModelView, serving_view

router = APIRouter(prefix="/v2", tags=["v2 (KServe)"])

HEADER_LENGTH = "Inference-Header-Content-Length"
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
    started = time.perf_counter_ns()
    view = serving_view(state, name, version)
    try:
        return await _infer(request, state, view, started)
    except Exception:
        state.statistics.record_failure(view.key, time.perf_counter_ns() - started)
        raise


async def _infer(request: Request, state: ServiceState, view: ModelView, started: int) -> Response:
    batcher = state.require_batcher()
    settings = state.settings
    raw = await request.body()  # its size is bounded by the body-limit middleware
    received = time.perf_counter_ns()
    # Inflating and parsing megabytes of JSON would stall every other request on the loop.
    parsed = await asyncio.to_thread(
        _parse, raw, request.headers.get("content-encoding"), _header_length(request), state
    )
    wanted = _requested_outputs(parsed, view)
    tensors = await _model_input(parsed, view, state)
    prepared = time.perf_counter_ns()
    names = tuple(dict.fromkeys(output.name for output in wanted))
    timing = RequestTiming(view.key)
    results = await batcher.submit(
        tensors, names, timeout_s=settings.request_timeout_s, run=view.engine.run, timing=timing
    )
    answered = time.perf_counter_ns()
    header: dict[str, Any] = {"model_name": view.name, "model_version": view.version}
    if parsed.id is not None:
        header["id"] = parsed.id
    content, header_length = await asyncio.to_thread(
        _encode, header, wanted, results, view.engine.artifacts.labels
    )
    done = time.perf_counter_ns()
    state.statistics.record_success(
        timing, input_ns=prepared - received, output_ns=done - answered, total_ns=done - started
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


def _requested_outputs(parsed: InferRequest, view: ModelView) -> list[RequestedOutput]:
    """What the client asked for, checked against the view; `logits` when nothing."""
    if parsed.outputs is None:
        return [RequestedOutput("logits", parsed.binary_output)]
    known = view.output_names
    unknown = [o.name for o in parsed.outputs if o.name not in known]
    if unknown:
        raise BadInput(
            f"unknown output {', '.join(unknown)}; the outputs of model '{view.name}' are "
            f"{', '.join(known)}"
        )
    return parsed.outputs


async def _model_input(
    parsed: InferRequest, view: ModelView, state: ServiceState
) -> list[np.ndarray]:
    """One (3, H, W) float32 tensor per image, from an FP32 or a BYTES input."""
    expected = view.engine.input_name
    given = [tensor.name for tensor in parsed.inputs]
    if expected not in given:
        raise BadInput(f"missing input '{expected}' (the request has {', '.join(given)})")
    if len(given) > 1:
        raise BadInput(f"the model has one input, '{expected}'; the request has {', '.join(given)}")
    tensor = parsed.inputs[0]
    if tensor.datatype not in view.kind.accepts:
        kinds = {TENSOR: "FP32 (a preprocessed tensor)", ENCODED_IMAGES: "BYTES (encoded images)"}
        raise BadInput(
            f"input '{expected}' of model '{view.name}': datatype must be "
            f"{' or '.join(kinds[k] for k in view.kind.accepts)}, not {tensor.datatype}"
        )
    image_shape = view.engine.artifacts.input_shape
    shape = list(tensor.data.shape)
    if tensor.datatype == TENSOR:
        if len(shape) != 4 or shape[1:] != image_shape or shape[0] == 0:
            raise BadInput(
                f"input '{expected}': an FP32 tensor must have shape "
                f"[N, {', '.join(map(str, image_shape))}] with N >= 1, not {shape}"
            )
        return list(tensor.data)
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
    blobs = list(tensor.data.ravel())
    return await preprocess_images(blobs, [f"image {i}" for i in range(len(blobs))], state, view)


async def preprocess_images(
    blobs: list[bytes], names: list[str], state: ServiceState, view: ModelView
) -> list[np.ndarray]:
    """Decode and preprocess encoded images on the decode pool, as the view's manifest says."""
    limit = state.settings.max_upload_bytes
    for name, blob in zip(names, blobs, strict=True):
        if len(blob) > limit:
            raise TooLarge(f"{name} is larger than the limit of {limit} bytes")
    return await preprocess_blobs(blobs, names, state, view.engine.artifacts.preprocess)
