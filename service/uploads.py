"""Uploaded images: read within limits, decoded and preprocessed off the event loop."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from functools import partial

import numpy as np
from fastapi import UploadFile
from PIL import Image

from core.preprocess import ImageDecodeError, PreprocessSpec, decode_image, preprocess_bytes
from service.errors import BadInput, TooLarge
from service.state import ServiceState


async def read_uploads(files: list[UploadFile], state: ServiceState) -> list[bytes]:
    """The bytes of each upload; 413 past the size or count limit, 400 for an empty file."""
    settings = state.settings
    if not files:
        raise BadInput("no image uploaded; send one or more files in the form field 'image'")
    if len(files) > settings.max_files:
        raise TooLarge(f"{len(files)} files uploaded; the limit is {settings.max_files}")
    blobs = []
    for index, upload in enumerate(files):
        data = await upload.read(settings.max_upload_bytes + 1)
        name = upload.filename or f"file {index + 1}"
        if len(data) > settings.max_upload_bytes:
            raise TooLarge(f"{name} is larger than the limit of {settings.max_upload_bytes} bytes")
        if not data:
            raise BadInput(f"{name} is empty")
        blobs.append(data)
    return blobs


def _named(files: list[UploadFile], index: int) -> str:
    return files[index].filename or f"file {index + 1}"


async def preprocess_uploads(
    files: list[UploadFile],
    blobs: list[bytes],
    state: ServiceState,
    spec: PreprocessSpec | None = None,
) -> list[np.ndarray]:
    """Model input tensors for uploaded files; a 400 names the bad file."""
    names = [_named(files, i) for i in range(len(files))]
    return await preprocess_blobs(blobs, names, state, spec)


async def preprocess_blobs(
    blobs: list[bytes],
    names: list[str],
    state: ServiceState,
    spec: PreprocessSpec | None = None,
) -> list[np.ndarray]:
    """Model input tensors, decoded in parallel on the decode pool; a 400 names the bad one.

    `spec`: the preprocessing of the model the tensors are for (default: the current one).
    """
    loop = asyncio.get_running_loop()
    spec = spec or state.artifacts.preprocess
    settings = state.settings
    observe = state.metrics.decode_cpu.observe
    jobs = [
        loop.run_in_executor(
            state.decode_pool,
            partial(
                _cpu_timed,
                observe,
                partial(
                    preprocess_bytes,
                    blob,
                    spec,
                    max_pixels=settings.max_pixels,
                    fast_jpeg=settings.fast_jpeg,
                ),
            ),
        )
        for blob in blobs
    ]
    results = await asyncio.gather(*jobs, return_exceptions=True)
    tensors = []
    for name, result in zip(names, results, strict=True):
        if isinstance(result, ImageDecodeError):
            raise BadInput(f"{name}: {result}")
        if isinstance(result, BaseException):
            raise result
        tensors.append(result)
    return tensors


def _cpu_timed(observe: Callable[[float], None], work: Callable[[], np.ndarray]) -> np.ndarray:
    """`work()`, with the CPU time of this thread it took observed (failures included)."""
    started = time.thread_time()
    try:
        return work()
    finally:
        observe(time.thread_time() - started)


async def decode_upload(blob: bytes, name: str, state: ServiceState) -> Image.Image:
    """One upload as an RGB image (for convolution and pooling), off the event loop."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(
            state.decode_pool, partial(decode_image, blob, max_pixels=state.settings.max_pixels)
        )
    except ImageDecodeError as exc:
        raise BadInput(f"{name}: {exc}") from None
