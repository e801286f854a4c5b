"""KServe's v1 data plane over HTTP: liveness at /, model status, :predict, :explain, errors.

The oracle for predictions is onnxruntime run directly on the exported model, with the
softmax and ranking done here in numpy.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from core.manifest import read_manifest
from core.preprocess import PreprocessSpec, preprocess_bytes
from tests.support import RunningServer

VIEWS = ["alexnet", "alexnet_image", "alexnet_logits"]
PREDICT = "/v1/models/alexnet:predict"


@pytest.fixture(scope="module")
def reference(exported_artifacts: Path) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(exported_artifacts / "alexnet.onnx"), providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def spec(exported_artifacts: Path) -> PreprocessSpec:
    return read_manifest(exported_artifacts).preprocess


def _probabilities(reference: ort.InferenceSession, tensor: np.ndarray) -> np.ndarray:
    logits = reference.run(["logits"], {"input": tensor[None]})[0][0].astype(np.float64)
    exp = np.exp(logits - logits.max())
    return exp / exp.sum()


def _b64(blob: bytes) -> str:
    return base64.b64encode(blob).decode()


def test_the_root_is_liveness_for_clients_and_the_page_for_browsers(
    server: RunningServer,
) -> None:
    plain = httpx.get(f"{server.url}/", timeout=30)  # httpx, like KServe's SDK, sends */*
    assert plain.status_code == 200 and plain.json() == {"status": "alive"}
    assert plain.headers["vary"] == "Accept"
    browser = httpx.get(
        f"{server.url}/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
    )
    assert browser.status_code == 200
    assert browser.headers["content-type"].startswith("text/html")
    assert "<html" in browser.text


def test_models_and_their_status(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/v1/models").json() == {"models": VIEWS}
    for name in VIEWS:
        status = httpx.get(f"{server.url}/v1/models/{name}")
        assert status.status_code == 200 and status.json() == {"name": name, "ready": True}
    # /v1/model is the service's own manifest route, untouched by the protocol's.
    assert "layers" in httpx.get(f"{server.url}/v1/model").json()


def test_predict_takes_every_instance_form(
    server: RunningServer,
    reference: ort.InferenceSession,
    photos: dict[str, bytes],
    spec: PreprocessSpec,
) -> None:
    names = ["coffee", "chelsea", "rocket", "astronaut"]
    tensor = preprocess_bytes(photos["camera"], spec)
    instances: list[Any] = [
        {"image_bytes": {"b64": _b64(photos["coffee"])}, "key": "   1"},
        {"image": {"b64": _b64(photos["chelsea"])}, "key": 2},
        {"b64": _b64(photos["rocket"])},
        {"data": _b64(photos["astronaut"])},
        tensor.tolist(),
    ]
    response = httpx.post(
        f"{server.url}{PREDICT}", json={"instances": instances, "top_k": 3}, timeout=120
    )
    assert response.status_code == 200, response.text
    predictions = response.json()["predictions"]
    assert [p.get("key") for p in predictions] == ["   1", 2, None, None, None]
    inputs = [preprocess_bytes(photos[n], spec, fast_jpeg=True) for n in names] + [tensor]
    for prediction, given in zip(predictions, inputs, strict=True):
        probabilities = _probabilities(reference, given)
        best = np.argsort(-probabilities)[:3]
        assert [p["index"] for p in prediction["top_k"]] == best.tolist()
        assert [p["label"] for p in prediction["top_k"]] == [f"class_{i}" for i in best]
        np.testing.assert_allclose(
            [p["probability"] for p in prediction["top_k"]], probabilities[best], atol=1e-5
        )
        assert {k: prediction[k] for k in ("label", "index", "probability")} == prediction["top_k"][
            0
        ]


def test_predict_defaults_to_five_and_counts_in_the_views_statistics(
    server: RunningServer, photos: dict[str, bytes]
) -> None:
    def stats() -> dict[str, Any]:
        return httpx.get(f"{server.url}/v2/models/alexnet_image/stats").json()["model_stats"][0]

    before = stats()
    body = {"instances": [{"b64": _b64(photos["coffee"])}, {"b64": _b64(photos["camera"])}]}
    response = httpx.post(f"{server.url}/v1/models/alexnet_image:predict", json=body, timeout=60)
    assert response.status_code == 200, response.text
    assert [len(p["top_k"]) for p in response.json()["predictions"]] == [5, 5]
    after = stats()
    success = after["inference_stats"]["success"]["count"]
    assert success - before["inference_stats"]["success"]["count"] == 1
    assert after["inference_count"] - before["inference_count"] == 2


def test_explain_answers_what_the_explain_routes_answer(
    server: RunningServer, photos: dict[str, bytes]
) -> None:
    image = base64.b64encode(photos["coffee"]).decode()
    body = {
        "instances": [{"image_bytes": {"b64": image}, "key": "cup"}, {"b64": image}],
        "class": "2",
        "patch": "60",  # JSON strings or numbers, as the form fields take them
        "stride": 60,
    }
    answer = httpx.post(f"{server.url}/v1/models/alexnet:explain", json=body, timeout=120)
    assert answer.status_code == 200, answer.text
    first, second = answer.json()["explanations"]
    assert (first["key"], first["method"], "key" in second) == ("cup", "occlusion", False)
    direct = httpx.post(
        f"{server.url}/v1/explain/occlusion",
        files={"image": ("c.jpg", photos["coffee"])},
        data={"class": "2", "patch": "60", "stride": "60"},
        timeout=120,
    ).json()
    for explanation in (first, second):
        assert explanation["occlusion"]["class"] == direct["class"]
        np.testing.assert_allclose(
            explanation["occlusion"]["heatmap"], direct["heatmap"], atol=1e-5
        )
    cams = httpx.post(
        f"{server.url}/v1/models/alexnet:explain",
        json={"instances": [{"b64": image}], "method": "gradcam++", "layer": "conv4"},
        timeout=120,
    ).json()["explanations"]
    assert cams[0]["gradcam"]["layer"] == "conv4" and cams[0]["method"] == "gradcam++"


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"method": "lime"}, "method"),
        ({"class": 99}, "out of range"),
        ({"layer": "fc8", "method": "gradcam"}, "not for 'fc8'"),
        ({"patch": 4, "stride": 2}, "ALEXNET_MAX_"),
        ({"top_k": 3}, "unknown field 'top_k'"),
    ],
)
def test_explain_refuses_bad_options(
    server: RunningServer, photos: dict[str, bytes], options: dict[str, Any], fragment: str
) -> None:
    instances = [{"b64": base64.b64encode(photos["camera"]).decode()}]
    answer = httpx.post(
        f"{server.url}/v1/models/alexnet:explain", json={"instances": instances, **options}
    )
    assert 400 <= answer.status_code < 500, answer.text
    assert fragment in answer.json()["error"]


def _tensor(shape: tuple[int, ...], value: Any = 0.5) -> Any:
    return np.full(shape, value).tolist()


# fmt: off
BAD: list[tuple[str, str, Any, int]] = [
    # (what, path, JSON body or raw bytes, status)
    ("not JSON", PREDICT, b"{instances", 400),
    ("not an object", PREDICT, [1, 2], 400),
    ("no instances", PREDICT, {"inputs": [[1]]}, 400),
    ("empty instances", PREDICT, {"instances": []}, 400),
    ("instances not a list", PREDICT, {"instances": {"b64": "AA=="}}, 400),
    ("too many instances", PREDICT, {"instances": [{"b64": "AA=="}] * 33}, 413),
    ("unknown field", PREDICT, {"instances": [{"b64": "AA=="}], "signature_name": "x"}, 400),
    ("top_k zero", PREDICT, {"instances": [{"b64": "AA=="}], "top_k": 0}, 400),
    ("top_k a string", PREDICT, {"instances": [{"b64": "AA=="}], "top_k": "5"}, 400),
    ("top_k true", PREDICT, {"instances": [{"b64": "AA=="}], "top_k": True}, 400),
    ("not base64", PREDICT, {"instances": [{"b64": "not base64!"}]}, 400),
    ("empty image", PREDICT, {"instances": [{"b64": ""}]}, 400),
    ("not an image", PREDICT, {"instances": [{"b64": _b64(b"hello, world")}]}, 400),
    ("b64 not a string", PREDICT, {"instances": [{"b64": 42}]}, 400),
    ("image_bytes bare", PREDICT, {"instances": [{"image_bytes": "AA=="}]}, 400),
    ("two image fields", PREDICT, {"instances": [{"b64": "AA==", "data": "AA=="}]}, 400),
    ("unknown instance field", PREDICT, {"instances": [{"pixels": [1]}]}, 400),
    ("key a list", PREDICT, {"instances": [{"b64": "AA==", "key": [1]}]}, 400),
    ("a number instance", PREDICT, {"instances": [7]}, 400),
    ("tensor of the wrong shape", PREDICT, {"instances": [_tensor((3, 2, 2))]}, 400),
    ("ragged tensor", PREDICT, {"instances": [[[1, 2], [3]]]}, 400),
    ("tensor of strings", PREDICT, {"instances": [_tensor((3, 227, 227), "a")]}, 400),
    ("tensor past float32", PREDICT, {"instances": [_tensor((3, 227, 227), 1e300)]}, 400),
    ("deeply nested", PREDICT, b'{"instances": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
    ("unknown model", "/v1/models/vgg:predict", {"instances": [{"b64": "AA=="}]}, 404),
    ("unknown model status", "/v1/models/vgg", None, 404),
    ("unknown model explain", "/v1/models/vgg:explain", {}, 404),
    ("predict by GET", PREDICT, None, 404),  # GET /v1/models/{name}: no model "alexnet:predict"
]
# fmt: on


@pytest.mark.parametrize(("what", "path", "body", "status"), BAD, ids=[b[0] for b in BAD])
def test_bad_requests_answer_v1_errors(
    server: RunningServer, what: str, path: str, body: Any, status: int
) -> None:
    url = f"{server.url}{path}"
    if body is None:
        response = httpx.get(url, timeout=60)
    else:
        content = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = httpx.post(url, content=content, timeout=60)
    assert response.status_code == status, response.text
    answer = response.json()
    assert list(answer) == ["error"] and isinstance(answer["error"], str) and answer["error"]


def test_the_bad_instance_is_named(server: RunningServer, photos: dict[str, bytes]) -> None:
    body = {"instances": [{"b64": _b64(photos["coffee"])}, {"b64": _b64(b"GIF89a broken")}]}
    response = httpx.post(f"{server.url}{PREDICT}", json=body, timeout=60)
    assert response.status_code == 400
    assert response.json()["error"].startswith("instance 1:")
