"""Bad input gets a clear JSON 4xx naming what was wrong, and the server keeps serving."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from tests.support import RunningServer, encode, running_server

MAX_UPLOAD = 300_000
MAX_PIXELS = 2_000_000


@pytest.fixture(scope="module")
def strict_server(exported_artifacts: Path, artefact_dir: Path) -> Iterator[RunningServer]:
    """A server with small limits, so the limits are cheap to cross."""
    with running_server(
        exported_artifacts,
        artefact_dir / "logs",
        max_upload_bytes=str(MAX_UPLOAD),
        max_pixels=str(MAX_PIXELS),
        max_kernel_size="9",
        max_files="4",
    ) as running:
        yield running


def _png(array: np.ndarray) -> bytes:
    return encode(array, "PNG")


def _bomb() -> bytes:
    """A small PNG file that decodes to 4000 x 4000 pixels (more than the limit)."""
    buffer = io.BytesIO()
    Image.new("L", (4000, 4000)).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


SMALL = _png(np.zeros((40, 50), np.uint8))
JPEG = encode(np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8))

IMAGE_CASES = [
    ("empty file", "/v1/predict", [("image", ("a.jpg", b""))], {}, 400, "empty"),
    (
        "not an image",
        "/v1/predict",
        [("image", ("a.jpg", b"hello, world" * 10))],
        {},
        400,
        "cannot decode",
    ),
    (
        "truncated JPEG",
        "/v1/predict",
        [("image", ("a.jpg", JPEG[: len(JPEG) // 2]))],
        {},
        400,
        "a.jpg",
    ),
    ("decompression bomb", "/v1/predict", [("image", ("bomb.png", _bomb()))], {}, 400, "pixels"),
    (
        "over the upload limit",
        "/v1/predict",
        [("image", ("big.bin", b"\xff" * (MAX_UPLOAD + 1)))],
        {},
        413,
        "limit",
    ),
    (
        "too many files",
        "/v1/predict",
        [("image", (f"{i}.png", SMALL)) for i in range(5)],
        {},
        413,
        "limit",
    ),
    ("no file", "/v1/predict", [], {"top_k": "3"}, 422, "image"),
    ("top_k zero", "/v1/predict", [("image", ("a.png", SMALL))], {"top_k": "0"}, 422, "top_k"),
    (
        "unknown layer",
        "/v1/activations",
        [("image", ("a.png", SMALL))],
        {"layers": "conv6"},
        400,
        "valid layers",
    ),
    (
        "png without a layer",
        "/v1/activations",
        [("image", ("a.png", SMALL))],
        {"format": "png"},
        400,
        "one layer",
    ),
]

KERNEL_CASES = [
    ("kernel not JSON", {"kernel": "[[1,-1]"}, 400, "JSON"),
    ("kernel not 2-D", {"kernel": "[1, -1]"}, 400, "2-D"),
    ("kernel empty", {"kernel": "[]"}, 400, "non-empty"),
    ("kernel empty row", {"kernel": "[[]]"}, 400, "empty"),
    ("kernel ragged", {"kernel": "[[1, 2], [3]]"}, 400, "same length"),
    ("kernel too large", {"kernel": str([[1] * 10] * 10)}, 400, "at most 9"),
    ("kernel NaN", {"kernel": "[[NaN, 1]]"}, 400, "finite"),
    ("kernel Infinity", {"kernel": "[[Infinity, 1]]"}, 400, "finite"),
    ("kernel strings", {"kernel": '[["1", "2"]]'}, 400, "numbers"),
    ("kernel booleans", {"kernel": "[[true, false]]"}, 400, "booleans"),
    ("kernel nested deep", {"kernel": "[" * 100_000 + "]" * 100_000}, 400, "kernel"),
    ("kernel and preset", {"kernel": "[[1]]", "preset": "edge"}, 400, "not both"),
    ("neither", {}, 400, "preset"),
    ("unknown preset", {"preset": "blur9"}, 400, "sobel_x"),
    ("unknown mode", {"preset": "edge", "mode": "deconvolution"}, 422, "mode"),
    ("unknown padding", {"preset": "edge", "padding": "reflect"}, 422, "padding"),
    ("stride zero", {"preset": "edge", "stride": "0"}, 422, "stride"),
    ("stride not a number", {"preset": "edge", "stride": "two"}, 422, "stride"),
]


def _check_error(response: httpx.Response, status: int, fragment: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] and error["request_id"]
    assert fragment.lower() in error["message"].lower(), error["message"]


@pytest.mark.parametrize(
    ("case", "path", "files", "form", "status", "fragment"),
    IMAGE_CASES,
    ids=[c[0] for c in IMAGE_CASES],
)
def test_bad_images(
    strict_server: RunningServer,
    case: str,
    path: str,
    files: list,  # type: ignore[type-arg]
    form: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    response = httpx.post(f"{strict_server.url}{path}", files=files or None, data=form, timeout=60)
    _check_error(response, status, fragment)


@pytest.mark.parametrize(
    ("case", "form", "status", "fragment"), KERNEL_CASES, ids=[c[0] for c in KERNEL_CASES]
)
def test_bad_kernels(
    strict_server: RunningServer, case: str, form: dict[str, str], status: int, fragment: str
) -> None:
    tiny = _png(np.zeros((6, 6), np.uint8))
    response = httpx.post(
        f"{strict_server.url}/v1/convolve", files={"image": ("a.png", tiny)}, data=form, timeout=60
    )
    _check_error(response, status, fragment)


def test_bad_pooling(strict_server: RunningServer) -> None:
    files = {"image": ("a.png", SMALL)}
    _check_error(
        httpx.post(f"{strict_server.url}/v1/pool", files=files, data={"size": "1000"}), 413, "limit"
    )
    _check_error(
        httpx.post(f"{strict_server.url}/v1/pool", files=files, data={"size": "60"}),
        400,
        "does not fit",
    )
    _check_error(
        httpx.post(f"{strict_server.url}/v1/pool", files=files, data={"op": "median"}), 422, "op"
    )


def test_unknown_route_is_json(strict_server: RunningServer) -> None:
    _check_error(httpx.get(f"{strict_server.url}/v1/nothing"), 404, "not found")


def test_still_serving_after_all_that(strict_server: RunningServer) -> None:
    response = httpx.post(f"{strict_server.url}/v1/predict", files={"image": ("a.jpg", JPEG)})
    assert response.status_code == 200
    assert len(response.json()["results"][0]["predictions"]) == 5
    assert strict_server.process.poll() is None
    assert "Traceback" not in strict_server.log()
