"""/v1/explain: occlusion and Grad-CAM over HTTP, against onnxruntime run directly."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from PIL import Image

from core.preprocess import PreprocessSpec, preprocess_bytes
from service.engine import Engine
from tests.service.inprocess import in_thread, open_engine, serve_in_thread, wait_for
from tests.support import RunningServer

CPU = ["CPUExecutionProvider"]


def post(url: str, path: str, image: bytes, **form: str) -> httpx.Response:
    return httpx.post(f"{url}{path}", files={"image": ("a.jpg", image)}, data=form, timeout=120)


@pytest.fixture(scope="module")
def manifest(exported_artifacts: Path) -> dict[str, Any]:
    return json.loads((exported_artifacts / "manifest.json").read_text())


@pytest.fixture(scope="module")
def crop(photos: dict[str, bytes], manifest: dict[str, Any]) -> np.ndarray:
    """The coffee photo as the network's input, preprocessed here as the manifest says."""
    spec = PreprocessSpec.model_validate(manifest["preprocess"])
    return preprocess_bytes(photos["coffee"], spec, fast_jpeg=True)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits.astype(np.float64) - logits.max())
    return shifted / shifted.sum()


def test_gradcam_is_the_gradient_graph_run_directly(
    server: RunningServer, photos: dict[str, bytes], exported_artifacts: Path, crop: np.ndarray
) -> None:
    answer = post(server.url, "/v1/explain/gradcam", photos["coffee"], **{"class": "3"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["class"]["index"], body["layer"], body["method"]) == (3, "conv5", "gradcam")
    session = ort.InferenceSession(str(exported_artifacts / "alexnet.explain.onnx"), providers=CPU)
    weights = np.zeros((1, 10), np.float32)
    weights[0, 3] = 1
    activation, gradient, logits = session.run(
        ["conv5", "conv5_gradient", "logits"], {"input": crop[None], "class_weights": weights}
    )
    # Grad-CAM by hand: channel weights are the gradient's mean over positions.
    cam = np.maximum(np.tensordot(gradient[0].mean(axis=(1, 2)), activation[0], axes=1), 0)
    expected = (cam - cam.min()) / (cam.max() - cam.min())
    np.testing.assert_allclose(np.array(body["heatmap"]), expected, atol=1e-4)
    assert body["peak"] == pytest.approx(float(cam.max()), rel=1e-4)
    assert body["class"]["probability"] == pytest.approx(softmax(logits[0])[3], abs=1e-6)
    assert (body["receptive_field"], body["jump"]) == (163, 16)


def test_the_default_class_is_the_prediction(
    server: RunningServer, photos: dict[str, bytes]
) -> None:
    top = httpx.post(
        f"{server.url}/v1/predict", files={"image": ("a.jpg", photos["astronaut"])}, timeout=60
    ).json()["results"][0]["predictions"][0]
    for path in ("/v1/explain/gradcam", "/v1/explain/occlusion"):
        body = post(server.url, path, photos["astronaut"], stride="48").json()
        assert body["class"]["index"] == top["index"], path


def test_gradcam_plus_plus_and_other_layers(
    server: RunningServer, photos: dict[str, bytes]
) -> None:
    plain = post(server.url, "/v1/explain/gradcam", photos["chelsea"], layer="conv3").json()
    plus = post(
        server.url, "/v1/explain/gradcam", photos["chelsea"], layer="conv3", method="gradcam++"
    ).json()
    assert np.array(plain["heatmap"]).shape == np.array(plus["heatmap"]).shape == (13, 13)
    assert plain["heatmap"] != plus["heatmap"]
    pool1 = post(server.url, "/v1/explain/gradcam", photos["chelsea"], layer="pool1").json()
    assert np.array(pool1["heatmap"]).shape == (27, 27)


def test_occlusion_is_the_model_run_on_occluded_copies(
    server: RunningServer, photos: dict[str, bytes], exported_artifacts: Path, crop: np.ndarray
) -> None:
    answer = post(server.url, "/v1/explain/occlusion", photos["coffee"], patch="80", stride="70")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["starts"] == [0, 70, 140, 147]  # the last window is flush with the edge
    assert body["forward_passes"] == 17
    # The same copies, made here: the mean colour is 0 after normalisation.
    copies = [crop]
    for top in body["starts"]:
        for left in body["starts"]:
            copy = crop.copy()
            copy[:, top : top + 80, left : left + 80] = 0
            copies.append(copy)
    session = ort.InferenceSession(str(exported_artifacts / "alexnet.onnx"), providers=CPU)
    (logits,) = session.run(["logits"], {"input": np.stack(copies)})
    probabilities = np.array([softmax(row) for row in logits])
    target = body["class"]["index"]
    assert target == int(np.argmax(probabilities[0]))
    expected = (probabilities[0, target] - probabilities[1:, target]).reshape(4, 4)
    np.testing.assert_allclose(np.array(body["heatmap"]), expected, atol=1e-5)


@pytest.mark.parametrize("path", ["/v1/explain/gradcam", "/v1/explain/occlusion"])
def test_png_is_the_map_over_the_input_crop(
    server: RunningServer, photos: dict[str, bytes], path: str
) -> None:
    answer = post(server.url, path, photos["rocket"], format="png")
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(answer.content))
    assert (picture.size, picture.mode) == ((227, 227), "RGB")


@pytest.mark.parametrize(
    ("path", "form", "status", "fragment"),
    [
        ("/v1/explain/gradcam", {"class": "10"}, 400, "classes 0..9"),
        ("/v1/explain/gradcam", {"class": "giraffe"}, 400, "unknown class"),
        ("/v1/explain/gradcam", {"layer": "fc7"}, 400, "not for 'fc7'"),
        ("/v1/explain/gradcam", {"method": "lime"}, 422, "method"),
        ("/v1/explain/occlusion", {"patch": "228"}, 400, "1 to 227"),
        ("/v1/explain/occlusion", {"stride": "0"}, 422, "stride"),
        ("/v1/explain/occlusion", {"patch": "8", "stride": "4"}, 422, "ALEXNET_MAX_"),
    ],
)
def test_bad_requests_are_refused_with_a_reason(
    server: RunningServer,
    photos: dict[str, bytes],
    path: str,
    form: dict[str, str],
    status: int,
    fragment: str,
) -> None:
    answer = post(server.url, path, photos["camera"], **form)
    assert answer.status_code == status, answer.text
    assert fragment in answer.json()["error"]["message"]


def test_a_non_image_is_refused(server: RunningServer) -> None:
    answer = post(server.url, "/v1/explain/gradcam", b"%PDF-1.7 not an image")
    assert answer.status_code == 400 and "cannot decode" in answer.json()["error"]["message"]


def test_artifacts_without_a_gradient_graph_say_how_to_get_one(
    exported_artifacts: Path, tmp_path: Path, photos: dict[str, bytes]
) -> None:
    folder = tmp_path / "artifacts"
    shutil.copytree(exported_artifacts, folder)
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["explain"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with serve_in_thread(open_engine(folder)) as (url, _, _, _):
        answer = post(url, "/v1/explain/gradcam", photos["camera"])
        assert answer.status_code == 404
        assert "alexnet export" in answer.json()["error"]["message"]
        assert post(url, "/v1/explain/occlusion", photos["camera"], stride="60").status_code == 200


def test_occluded_copies_never_hold_a_prediction_back(
    model_engine: Engine, photos: dict[str, bytes], crop: np.ndarray, manifest: dict[str, Any]
) -> None:
    """The batcher's background lane: a prediction arriving while an occlusion's copies are
    queued runs in the very next batch, ahead of them and alone."""
    spec = PreprocessSpec.model_validate(manifest["preprocess"])
    camera = float(preprocess_bytes(photos["camera"], spec, fast_jpeg=True).mean())
    with serve_in_thread(model_engine, background_batch_size=4) as (url, state, model, _):
        model.gate.clear()
        occluding, occlusion = in_thread(
            lambda: post(url, "/v1/explain/occlusion", photos["coffee"], patch="40", stride="40")
        )
        assert model.entered.wait(timeout=60)  # 4 of the 37 images are at the gate
        predicting, prediction = in_thread(
            lambda: httpx.post(
                f"{url}/v1/predict", files={"image": ("b.jpg", photos["camera"])}, timeout=120
            )
        )
        batcher = state.require_batcher()
        wait_for(lambda: batcher.depth == 37 - 4 + 1)
        model.gate.set()
        predicting.join(timeout=120)
        occluding.join(timeout=120)
    assert prediction["result"].status_code == 200
    assert occlusion["result"].status_code == 200
    assert camera not in model.image_means[0]
    assert model.image_means[1] == [camera]
    assert {len(means) for means in model.image_means[2:]} <= {4, 1}  # 37 = 9 x 4 + 1
