"""/v1/activations against the real server, checked against onnxruntime run directly."""

from __future__ import annotations

import io
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from core.preprocess import preprocess_bytes
from service.artifacts import load_artifacts
from tests.support import DESIGN_LAYERS as LAYERS
from tests.support import RunningServer


@pytest.fixture(scope="module")
def reference(exported_artifacts: Path, photos: dict[str, bytes]) -> dict[str, np.ndarray]:
    """Every layer for the coffee photo, from onnxruntime on the same preprocessed tensor."""
    artifacts = load_artifacts(exported_artifacts)
    session = ort.InferenceSession(str(artifacts.model_path), providers=["CPUExecutionProvider"])
    tensor = preprocess_bytes(photos["coffee"], artifacts.preprocess, fast_jpeg=True)[None]
    return {
        name: value[0]
        for name, value in zip(LAYERS, session.run(LAYERS, {"input": tensor}), strict=True)
    }


def _post(server: RunningServer, photo: bytes, **form: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/activations",
        files={"image": ("coffee.jpg", photo)},
        data=form,
        timeout=60,
    )


def test_npz_equals_onnxruntime(
    server: RunningServer, photos: dict[str, bytes], reference: dict[str, np.ndarray]
) -> None:
    response = _post(server, photos["coffee"], format="npz")
    assert response.status_code == 200, response.text
    arrays = np.load(io.BytesIO(response.content))
    assert sorted(arrays.files) == sorted(LAYERS)
    assert arrays["conv1"].shape == (96, 55, 55)
    for name in LAYERS:
        assert arrays[name].dtype == np.float32
        np.testing.assert_allclose(arrays[name], reference[name], rtol=1e-5, atol=1e-5)


def test_json_statistics(
    server: RunningServer, photos: dict[str, bytes], reference: dict[str, np.ndarray]
) -> None:
    response = _post(server, photos["coffee"], layers="conv1,pool3,fc7", format="json")
    assert response.status_code == 200, response.text
    layers = response.json()["layers"]
    assert list(layers) == ["conv1", "pool3", "fc7"]
    for name, stats in layers.items():
        ref = reference[name].astype(np.float64)
        assert stats["shape"] == list(ref.shape)
        assert stats["mean"] == pytest.approx(ref.mean(), rel=1e-4, abs=1e-6)
        assert stats["std"] == pytest.approx(ref.std(), rel=1e-4, abs=1e-6)
        assert stats["min"] == pytest.approx(ref.min(), abs=1e-5)
        assert stats["max"] == pytest.approx(ref.max(), rel=1e-5)
        assert stats["sparsity"] == pytest.approx(np.mean(ref == 0), abs=1e-3)
    conv1_means = reference["conv1"].reshape(96, -1).mean(axis=1)
    top = layers["conv1"]["top_channels"]
    assert top[0]["channel"] == int(np.argmax(conv1_means))
    assert [t["mean"] for t in top] == sorted((t["mean"] for t in top), reverse=True)


def test_png_grid_of_one_layer(server: RunningServer, photos: dict[str, bytes]) -> None:
    response = _post(server, photos["coffee"], layers="conv2", format="png", channels="0,5,7")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "image/png"
    grid = Image.open(io.BytesIO(response.content))
    assert grid.size[0] > 27 and grid.size[1] > 27


@pytest.mark.parametrize(
    ("form", "status", "fragment"),
    [
        ({"layers": "conv9"}, 400, "valid layers: conv1"),
        ({"format": "png"}, 400, "one layer"),
        ({"format": "png", "layers": "conv1,conv2"}, 400, "one layer"),
        ({"format": "png", "layers": "conv1", "channels": "999"}, 400, "channels"),
        ({"format": "xml"}, 422, "format"),
    ],
)
def test_bad_activation_requests(
    server: RunningServer,
    photos: dict[str, bytes],
    form: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    response = _post(server, photos["coffee"], **form)
    assert response.status_code == status
    assert fragment in response.json()["error"]["message"]
