"""POST /v1/demo/equivariance and /v1/demo/pooling: the lecture's two properties, measured.

The HTTP side only: form fields, which mode a request asks for, limits, and the
JSON or PNG answer. The work is in service/demos/ and service/numerics/.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response

from service import demos
from service.demo_models import EquivarianceResponse, PoolingResponse
from service.errors import BadInput, TooLarge
from service.numerics.invariance import Direction
from service.routers.convolve import choose_kernel, image_array
from service.state import ServiceState, StateDep
from service.uploads import decode_upload, preprocess_uploads, read_uploads

router = APIRouter(prefix="/v1/demo", tags=["demonstrations"])

Format = Literal["json", "png"]
PNG_TOO: dict[int | str, dict[str, Any]] = {200: {"content": {"image/png": {}}}}


async def _grey(image: UploadFile, state: ServiceState) -> np.ndarray:
    """The upload's grey pixels (0..255, float32), within the demos' pixel limit."""
    (blob,) = await read_uploads([image], state)
    pixels = image_array(await decode_upload(blob, image.filename or "image", state), "gray")
    limit = state.settings.max_demo_pixels
    if pixels.size > limit:
        raise TooLarge(
            f"the image has {pixels.size} pixels ({pixels.shape[1]}x{pixels.shape[0]}); the "
            f"demonstrations take at most {limit} (ALEXNET_MAX_DEMO_PIXELS): scale it down"
        )
    return pixels


async def _tensor(image: UploadFile, state: ServiceState) -> np.ndarray:
    """The network's input tensor for the upload, as /v1/predict makes it."""
    blobs = await read_uploads([image], state)
    (tensor,) = await preprocess_uploads([image], blobs, state)
    return tensor


@router.post("/equivariance", response_model=EquivarianceResponse, responses=PNG_TOO)
async def equivariance(
    state: StateDep,
    image: Annotated[UploadFile, File(description="the image to shift")],
    layer: Annotated[
        str | None,
        Form(description="a layer of the model with a map (default: conv1); not with a kernel"),
    ] = None,
    kernel: Annotated[
        str | None, Form(description="instead of a layer: your kernel, a JSON 2-D list")
    ] = None,
    preset_name: Annotated[
        str | None, Form(alias="preset", description="instead of a layer: a named kernel")
    ] = None,
    mode: Annotated[
        Literal["convolution", "cross_correlation"] | None,
        Form(description="kernel only; default convolution"),
    ] = None,
    padding: Annotated[
        Literal["valid", "same", "full"] | None, Form(description="kernel only; default valid")
    ] = None,
    stride: Annotated[int | None, Form(ge=1, le=64, description="kernel only; default 1")] = None,
    dx: Annotated[
        int | None, Form(description="input shift right in pixels; default: one jump")
    ] = None,
    dy: Annotated[
        int | None, Form(description="input shift down in pixels; default: one jump")
    ] = None,
    channel: Annotated[
        int | None, Form(description="png: the channel drawn; default the most active")
    ] = None,
    format: Annotated[Format, Form()] = "json",
) -> EquivarianceResponse | Response:
    """Shift the input by (dx, dy): does the map shift by (dx, dy) / jump? Max |difference|."""
    if kernel is None and preset_name is None:
        if mode is not None or padding is not None or stride is not None:
            raise BadInput("mode, padding and stride go with a kernel; a layer has its own")
        name = layer or demos.first_spatial_layer(state)
        demos.check_model_layer(state, name)  # before decoding: a typo costs nothing
        run = await demos.model_equivariance(state, await _tensor(image, state), name, dx, dy)
    else:
        if layer is not None:
            raise BadInput("give a layer of the model or a kernel/preset, not both")
        weights = choose_kernel(kernel, preset_name, state.settings.max_kernel_size)
        run = await demos.kernel_equivariance(
            state,
            await _grey(image, state),
            weights,
            mode=mode or "convolution",
            padding=padding or "valid",
            stride=stride or 1,
            dx=dx,
            dy=dy,
        )
    if format == "png":
        png, drawn = demos.equivariance_png(run, channel)
        return Response(png, media_type="image/png", headers={"X-Channel": str(drawn)})
    return run.response


@router.post("/pooling", response_model=PoolingResponse, responses=PNG_TOO)
async def pooling(
    state: StateDep,
    image: Annotated[UploadFile, File(description="the image whose map is shifted and pooled")],
    layer: Annotated[
        str | None, Form(description="a max-pooling layer of the model (default: pool1)")
    ] = None,
    size: Annotated[
        int | None, Form(ge=1, description="instead of a layer: pool the grey image, window side")
    ] = None,
    stride: Annotated[
        int | None, Form(ge=1, description="with size: the stride; default the window side")
    ] = None,
    max_shift: Annotated[int, Form(ge=1, description="shifts 1..max_shift are tried")] = 4,
    direction: Annotated[Direction, Form(description="which way the map moves")] = "right",
    format: Annotated[Format, Form()] = "json",
) -> PoolingResponse | Response:
    """Shift a map by 1..k: what fraction of max-pooled (and average-pooled) outputs stay?"""
    if max_shift > state.settings.max_demo_shift:
        raise TooLarge(
            f"max_shift {max_shift} is over the limit of {state.settings.max_demo_shift}"
        )
    if size is None:
        if stride is not None:
            raise BadInput("stride goes with size (pooling the image); a layer has its own")
        pool = demos.pool_layer(state, layer or demos.first_pool_layer(state))
        answer = await demos.model_pooling(
            state, await _tensor(image, state), pool, max_shift=max_shift, direction=direction
        )
    else:
        if layer is not None:
            raise BadInput("give a layer of the model or a window size, not both")
        if size > state.settings.max_pool_size:
            raise TooLarge(f"size {size} is over the limit of {state.settings.max_pool_size}")
        answer = await demos.pooling(
            state,
            await _grey(image, state),
            size=size,
            stride=stride or size,
            max_shift=max_shift,
            direction=direction,
        )
    if format == "png":
        return Response(demos.pooling_png(answer), media_type="image/png")
    return answer
