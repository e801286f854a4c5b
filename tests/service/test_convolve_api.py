"""/v1/convolve and /v1/pool against the real server, checked against scipy and numpy."""

from __future__ import annotations

import io
import json

import httpx
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import signal

from tests.support import RunningServer, encode

RNG = np.random.default_rng(7)
GREY = RNG.integers(0, 256, size=(280, 320), dtype=np.uint8)  # 320 wide, 280 high
RGB = RNG.integers(0, 256, size=(41, 53, 3), dtype=np.uint8)


def _post(server: RunningServer, path: str, image: np.ndarray, **form: object) -> httpx.Response:
    data = {k: (json.dumps(v) if isinstance(v, list) else str(v)) for k, v in form.items()}
    return httpx.post(
        f"{server.url}{path}",
        files={"image": ("x.png", encode(image, "PNG"))},
        data=data,
        timeout=60,
    )


def _npy(response: httpx.Response) -> np.ndarray:
    assert response.status_code == 200, response.text
    return np.load(io.BytesIO(response.content))


def test_edge_kernel_numbers_from_the_book(server: RunningServer) -> None:
    response = _post(server, "/v1/convolve", GREY, kernel=[[1, -1]], format="json")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["shape"] == [280, 319]
    assert body["efficiency"]["convolution"] == {"stored_floats": 2, "float_ops": 267_960}
    assert body["efficiency"]["sparse_matrix"] == {"stored_floats": 178_640, "float_ops": 267_960}
    dense = body["efficiency"]["dense_matrix"]
    assert dense["stored_floats"] == 319 * 280 * 320 * 280 > 8e9
    assert 1.9 * dense["stored_floats"] < dense["float_ops"] < 2.1 * dense["stored_floats"]


@pytest.mark.parametrize("mode", ["convolution", "cross_correlation"])
@pytest.mark.parametrize("padding", ["valid", "same", "full"])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_convolve_equals_scipy(server: RunningServer, mode: str, padding: str, stride: int) -> None:
    kernel = [[1.0, -2.0, 0.5], [0.0, 3.0, -1.0]]  # 2x3: not symmetric, even height
    got = _npy(
        _post(
            server,
            "/v1/convolve",
            GREY,
            kernel=kernel,
            mode=mode,
            padding=padding,
            stride=stride,
            format="npy",
        )
    )
    reference_fn = signal.convolve2d if mode == "convolution" else signal.correlate2d
    expected = reference_fn(GREY.astype(np.float64), np.array(kernel), mode=padding)
    expected = expected[::stride, ::stride]
    assert got.dtype == np.float32 and got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-3)


def test_convolve_rgb_per_channel_with_a_preset(server: RunningServer) -> None:
    got = _npy(_post(server, "/v1/convolve", RGB, preset="sobel_x", color="rgb", format="npy"))
    sobel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], dtype=np.float64)
    expected = np.stack(
        [signal.convolve2d(RGB[..., c].astype(np.float64), sobel, mode="valid") for c in range(3)]
    )
    np.testing.assert_allclose(got, expected, atol=1e-3)


def test_convolve_png_is_the_result_scaled(server: RunningServer) -> None:
    response = _post(server, "/v1/convolve", GREY, preset="edge", format="png")
    assert response.status_code == 200
    picture = np.asarray(Image.open(io.BytesIO(response.content)))
    assert picture.shape == (280, 319)
    assert picture.min() == 0 and picture.max() == 255


@pytest.mark.parametrize(("op", "size", "stride"), [("max", 2, None), ("avg", 3, 2), ("max", 3, 1)])
def test_pool_equals_numpy(server: RunningServer, op: str, size: int, stride: int | None) -> None:
    form: dict[str, object] = {"op": op, "size": size, "color": "rgb", "format": "npy"}
    if stride:
        form["stride"] = stride
    got = _npy(_post(server, "/v1/pool", RGB, **form))
    step = stride or size
    windows = sliding_window_view(
        RGB.transpose(2, 0, 1).astype(np.float64), (size, size), axis=(1, 2)
    )[:, ::step, ::step]
    expected = windows.max(axis=(-1, -2)) if op == "max" else windows.mean(axis=(-1, -2))
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)


def test_presets_listed(server: RunningServer) -> None:
    presets = httpx.get(f"{server.url}/v1/presets").json()
    assert presets["edge"] == [[1.0, -1.0]]
    assert {"sobel_x", "sobel_y", "laplacian", "gaussian", "box", "sharpen", "identity"} <= set(
        presets
    )
