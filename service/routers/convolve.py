"""POST /v1/convolve and /v1/pool: filter an uploaded image; GET /v1/presets: named kernels."""

from __future__ import annotations

import asyncio
import io
from functools import partial
from typing import Annotated, Any, Literal

import numpy as np
from fastapi import APIRouter, File, Form, UploadFile
from fastapi.responses import Response
from PIL import Image

from service.errors import BadInput, TooLarge
from service.numerics.efficiency import efficiency
from service.numerics.kernels import PRESETS, parse_kernel, preset
from service.numerics.statistics import summarise
from service.pictures import array_png
from service.state import ServiceState, StateDep
from service.uploads import decode_upload, read_uploads

router = APIRouter(prefix="/v1", tags=["convolve"])

Color = Literal["gray", "rgb"]
Format = Literal["json", "png", "npy"]
MAX_KERNEL_TEXT = 256 * 1024  # characters of JSON; any allowed kernel fits many times over


def image_array(image: Image.Image, color: Color) -> np.ndarray:
    """Pixel values 0..255 as float32: (rows, cols) grey (Pillow's "L" luma) or (3, rows, cols)."""
    if color == "gray":
        return np.asarray(image.convert("L"), dtype=np.float32)
    return np.ascontiguousarray(np.asarray(image, dtype=np.float32).transpose(2, 0, 1))


def choose_kernel(kernel: str | None, preset_name: str | None, max_size: int) -> np.ndarray:
    """The user's kernel (JSON 2-D list) or a named preset; exactly one of them."""
    if kernel is not None and preset_name is not None:
        raise BadInput("give either 'kernel' or 'preset', not both")
    if preset_name is not None:
        return preset(preset_name)
    if kernel is None:
        raise BadInput(
            f"give a 'kernel' (a JSON 2-D list) or a 'preset' ({', '.join(sorted(PRESETS))})"
        )
    if len(kernel) > MAX_KERNEL_TEXT:
        raise TooLarge(f"the kernel text is over {MAX_KERNEL_TEXT} characters")
    try:
        return parse_kernel(kernel, max_size)
    except RecursionError:  # JSON nested deeper than Python's parser goes
        raise BadInput("the kernel is nested far too deep; it must be a 2-D list") from None


async def _load(image: UploadFile, color: Color, state: ServiceState) -> np.ndarray:
    (blob,) = await read_uploads([image], state)
    decoded = await decode_upload(blob, image.filename or "image", state)
    return image_array(decoded, color)


def _respond(result: np.ndarray, fmt: Format, details: dict[str, Any]) -> Response | dict[str, Any]:
    if fmt == "png":
        return Response(
            array_png(result),
            media_type="image/png",
            headers={"X-Output-Shape": ",".join(map(str, result.shape))},
        )
    if fmt == "npy":
        buffer = io.BytesIO()
        np.save(buffer, result.astype(np.float32, copy=False))
        return Response(buffer.getvalue(), media_type="application/x-npy")
    return {"shape": list(result.shape), "statistics": summarise(result), **details}


FILTER_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "image/png": {}, "application/x-npy": {}}}
}


@router.post("/convolve", response_model=None, responses=FILTER_RESPONSES)
async def convolve(
    state: StateDep,
    image: Annotated[UploadFile, File(description="the image to convolve")],
    kernel: Annotated[str | None, Form(description="JSON 2-D list, e.g. [[1,-1]]")] = None,
    preset_name: Annotated[str | None, Form(alias="preset", description="a named kernel")] = None,
    mode: Annotated[Literal["convolution", "cross_correlation"], Form()] = "convolution",
    padding: Annotated[Literal["valid", "same", "full"], Form()] = "valid",
    stride: Annotated[int, Form(ge=1, le=64)] = 1,
    color: Annotated[Color, Form()] = "gray",
    format: Annotated[Format, Form()] = "json",
) -> Response | dict[str, Any]:
    """True convolution (kernel flipped) or cross-correlation, as scipy's convolve2d/correlate2d."""
    weights = choose_kernel(kernel, preset_name, state.settings.max_kernel_size)
    pixels = await _load(image, color, state)
    engine = state.require_filters().convolution
    result = await asyncio.get_running_loop().run_in_executor(
        state.decode_pool,
        partial(engine.convolve, pixels, weights, mode=mode, padding=padding, stride=stride),
    )
    rows_cols = pixels.shape[-2:]
    details = {
        "input_shape": list(pixels.shape),
        "kernel": weights.tolist(),
        "mode": mode,
        "padding": padding,
        "stride": stride,
        "color": color,
        "efficiency": efficiency(
            (int(rows_cols[0]), int(rows_cols[1])),
            weights.shape,
            padding=padding,
            mode=mode,
            stride=stride,
            channels=3 if color == "rgb" else 1,
        ),
    }
    return _respond(result, format, details)


@router.post("/pool", response_model=None, responses=FILTER_RESPONSES)
async def pool(
    state: StateDep,
    image: Annotated[UploadFile, File(description="the image to pool")],
    op: Annotated[Literal["max", "avg"], Form()] = "max",
    size: Annotated[int, Form(ge=1, description="window side")] = 2,
    stride: Annotated[int | None, Form(ge=1, description="default: the window side")] = None,
    color: Annotated[Color, Form()] = "gray",
    format: Annotated[Format, Form()] = "json",
) -> Response | dict[str, Any]:
    """Max or average pooling over size x size windows (no padding), per channel."""
    if size > state.settings.max_pool_size:
        raise TooLarge(f"size {size} is over the limit of {state.settings.max_pool_size}")
    pixels = await _load(image, color, state)
    engine = state.require_filters().pooling
    result = await asyncio.get_running_loop().run_in_executor(
        state.decode_pool, partial(engine.pool, pixels, op=op, size=size, stride=stride)
    )
    details = {
        "input_shape": list(pixels.shape),
        "op": op,
        "size": size,
        "stride": stride or size,
        "color": color,
    }
    return _respond(result, format, details)


@router.get("/presets")
async def presets() -> dict[str, list[list[float]]]:
    """The named kernels, written for true convolution."""
    return {name: kernel.tolist() for name, kernel in PRESETS.items()}
