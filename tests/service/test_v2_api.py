"""The KServe v2 routes against the real server, spoken to by the real tritonclient."""

from __future__ import annotations

import base64
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from core.preprocess import PreprocessSpec, preprocess_bytes
from tests.support import DESIGN_LAYERS as LAYERS
from tests.support import RunningServer

MODEL = "alexnet"
ATOL = 1e-4


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    """tritonclient pointed at the server, exactly as a user would make it."""
    client = triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=120.0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def manifest(exported_artifacts: Path) -> dict[str, Any]:
    """The exported manifest, read straight from the file (not through the server)."""
    return json.loads((exported_artifacts / "manifest.json").read_text())


@pytest.fixture(scope="module")
def reference(exported_artifacts: Path) -> ort.InferenceSession:
    """onnxruntime run directly on the exported model: what the server must agree with."""
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    return ort.InferenceSession(
        str(exported_artifacts / "alexnet.onnx"), options, providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def spec(manifest: dict[str, Any]) -> PreprocessSpec:
    return PreprocessSpec.model_validate(manifest["preprocess"])


@pytest.fixture(scope="module")
def batch(photos: dict[str, bytes], spec: PreprocessSpec) -> np.ndarray:
    """Two photos preprocessed on the client side as the manifest says: (2, 3, 227, 227)."""
    return np.stack([preprocess_bytes(photos[name], spec) for name in ("coffee", "chelsea")])


def _jpeg_logits(
    reference: ort.InferenceSession, spec: PreprocessSpec, blobs: list[bytes]
) -> np.ndarray:
    # The server decodes large JPEGs in draft mode by default; so does the reference.
    tensor = np.stack([preprocess_bytes(blob, spec, fast_jpeg=True) for blob in blobs])
    return _run(reference, tensor, "logits")[0]


def _run(reference: ort.InferenceSession, tensor: np.ndarray, *names: str) -> list[np.ndarray]:
    return reference.run(list(names), {"input": tensor})


def _fp32(tensor: np.ndarray, binary: bool) -> triton.InferInput:
    given = triton.InferInput("input", list(tensor.shape), "FP32")
    return given.set_data_from_numpy(tensor, binary_data=binary)


def test_health_and_server_metadata(client: triton.InferenceServerClient) -> None:
    assert client.is_server_live()
    assert client.is_server_ready()
    assert client.is_model_ready(MODEL)
    assert client.is_model_ready(MODEL, "1")
    assert not client.is_model_ready("resnet")
    metadata = client.get_server_metadata()
    assert metadata["name"] and metadata["version"]
    assert "binary_tensor_data" in metadata["extensions"]


def test_model_metadata_lists_the_input_and_every_layer(
    client: triton.InferenceServerClient, manifest: dict[str, Any]
) -> None:
    for metadata in (client.get_model_metadata(MODEL), client.get_model_metadata(MODEL, "1")):
        assert metadata["name"] == MODEL
        assert metadata["versions"] == ["1"]
        assert metadata["platform"] == "onnxruntime_onnx"
        assert metadata["inputs"] == [
            {"name": "input", "datatype": "FP32", "shape": [-1, 3, 227, 227]}
        ]
        outputs = {o["name"]: o for o in metadata["outputs"]}
        assert list(outputs) == ["logits", *LAYERS]
        assert outputs["logits"]["shape"] == [-1, len(manifest["labels"])]
        for layer in manifest["layers"]:
            assert outputs[layer["name"]] == {
                "name": layer["name"],
                "datatype": "FP32",
                "shape": [-1, *layer["output_shape"]],
            }


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_logits_by_default_equal_onnxruntime(
    client: triton.InferenceServerClient,
    reference: ort.InferenceSession,
    batch: np.ndarray,
    binary: bool,
) -> None:
    result = client.infer(MODEL, [_fp32(batch, binary)])
    logits = result.as_numpy("logits")
    assert logits.shape == (2, 10) and logits.dtype == np.float32
    np.testing.assert_allclose(logits, _run(reference, batch, "logits")[0], atol=ATOL)
    assert [o["name"] for o in result.get_response()["outputs"]] == ["logits"]


@pytest.mark.parametrize("conv_binary", [True, False], ids=["conv1-binary", "conv1-json"])
def test_requested_layers_equal_onnxruntime(
    client: triton.InferenceServerClient,
    reference: ort.InferenceSession,
    batch: np.ndarray,
    conv_binary: bool,
) -> None:
    tensor = batch[:1] if not conv_binary else batch  # keep the JSON form small
    outputs = [
        triton.InferRequestedOutput("conv1", binary_data=conv_binary),
        triton.InferRequestedOutput("fc7", binary_data=not conv_binary),
        triton.InferRequestedOutput("logits", binary_data=True),
    ]
    result = client.infer(MODEL, [_fp32(tensor, not conv_binary)], outputs=outputs)
    expected = _run(reference, tensor, "conv1", "fc7", "logits")
    for name, want in zip(["conv1", "fc7", "logits"], expected, strict=True):
        got = result.as_numpy(name)
        assert got.shape == want.shape, name
        np.testing.assert_allclose(got, want, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("shape", [[3], [3, 1]], ids=["N", "Nx1"])
def test_bytes_input_of_jpegs(
    client: triton.InferenceServerClient,
    reference: ort.InferenceSession,
    photos: dict[str, bytes],
    spec: PreprocessSpec,
    shape: list[int],
) -> None:
    blobs = [photos[name] for name in ("astronaut", "rocket", "camera")]
    given = triton.InferInput("input", shape, "BYTES")
    given.set_data_from_numpy(np.array(blobs, dtype=object).reshape(shape))
    result = client.infer(MODEL, [given])
    np.testing.assert_allclose(
        result.as_numpy("logits"), _jpeg_logits(reference, spec, blobs), atol=ATOL
    )


def test_bytes_input_as_base64_json(
    server: RunningServer,
    reference: ort.InferenceSession,
    photos: dict[str, bytes],
    spec: PreprocessSpec,
) -> None:
    image = {"name": "input", "datatype": "BYTES", "shape": [1]}
    body = {
        "id": "b64",
        "inputs": [{**image, "data": [base64.b64encode(photos["coffee"]).decode()]}],
    }
    response = httpx.post(f"{server.url}/v2/models/{MODEL}/infer", json=body, timeout=60)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["id"] == "b64" and answer["model_name"] == MODEL
    (logits,) = answer["outputs"]
    assert (logits["name"], logits["datatype"], logits["shape"]) == ("logits", "FP32", [1, 10])
    expected = _jpeg_logits(reference, spec, [photos["coffee"]])[0]
    np.testing.assert_allclose(logits["data"], expected, atol=ATOL)


@pytest.mark.parametrize("algorithm", ["gzip", "deflate"])
def test_compressed_requests(
    client: triton.InferenceServerClient,
    reference: ort.InferenceSession,
    batch: np.ndarray,
    algorithm: str,
) -> None:
    result = client.infer(MODEL, [_fp32(batch, True)], request_compression_algorithm=algorithm)
    np.testing.assert_allclose(
        result.as_numpy("logits"), _run(reference, batch, "logits")[0], atol=ATOL
    )


def test_version_id_and_classification(
    client: triton.InferenceServerClient, reference: ort.InferenceSession, batch: np.ndarray
) -> None:
    outputs = [triton.InferRequestedOutput("logits", class_count=3)]
    result = client.infer(
        MODEL, [_fp32(batch, True)], model_version="1", request_id="req-42", outputs=outputs
    )
    response = result.get_response()
    assert (response["id"], response["model_version"]) == ("req-42", "1")
    classes = result.as_numpy("logits")
    assert classes.shape == (2, 3)
    logits = _run(reference, batch, "logits")[0]
    for row, scores in zip(classes, logits, strict=True):
        top = np.argsort(-scores)[:3]
        fields = [entry.decode().split(":") for entry in row]
        assert [int(f[1]) for f in fields] == top.tolist()
        assert [f[2] for f in fields] == [f"class_{i}" for i in top]
        np.testing.assert_allclose([float(f[0]) for f in fields], scores[top], atol=1e-4)


def test_tritonclient_reads_our_errors(
    client: triton.InferenceServerClient, batch: np.ndarray
) -> None:
    with pytest.raises(InferenceServerException, match="unknown model 'vgg'"):
        client.infer("vgg", [_fp32(batch[:1], True)])
    with pytest.raises(InferenceServerException, match="unknown output"):
        client.infer(
            MODEL, [_fp32(batch[:1], True)], outputs=[triton.InferRequestedOutput("conv9")]
        )


def _header(*inputs: dict[str, Any], **extra: Any) -> bytes:
    return json.dumps({"inputs": list(inputs), **extra}).encode()


IMAGE = {"name": "input", "datatype": "FP32", "shape": [1, 3, 227, 227]}
IMAGE_BYTES = 3 * 227 * 227 * 4
INFER = f"/v2/models/{MODEL}/infer"
BINARY_HEAD = _header({**IMAGE, "parameters": {"binary_data_size": IMAGE_BYTES}})
LENGTH = "Inference-Header-Content-Length"
# fmt: off
BAD: list[tuple[str, str, str, bytes, dict[str, str], int]] = [
    # (what, method, path, body, headers, status)
    ("unknown model", "POST", "/v2/models/vgg/infer", BINARY_HEAD, {}, 404),
    ("unknown model metadata", "GET", "/v2/models/vgg", b"", {}, 404),
    ("unknown model ready", "GET", "/v2/models/vgg/ready", b"", {}, 404),
    ("unknown version", "POST", f"/v2/models/{MODEL}/versions/7/infer", BINARY_HEAD, {}, 404),
    ("unknown version metadata", "GET", f"/v2/models/{MODEL}/versions/7", b"", {}, 404),
    ("no such route", "GET", f"/v2/models/{MODEL}/versions", b"", {}, 404),
    ("wrong method", "POST", "/v2/health/live", b"", {}, 405),
    ("wrong datatype", "POST", INFER,
     _header({"name": "input", "datatype": "INT32", "shape": [1, 2], "data": [1, 2]}), {}, 400),
    ("unknown datatype", "POST", INFER, _header({**IMAGE, "datatype": "FLOAT32"}), {}, 400),
    ("shape does not match data", "POST", INFER, _header({**IMAGE, "data": [0.5] * 10}), {}, 400),
    ("wrong image shape", "POST", INFER,
     _header({**IMAGE, "shape": [1, 3, 2, 2], "data": [0.5] * 12}), {}, 400),
    ("binary size disagrees with body", "POST", INFER, BINARY_HEAD + bytes(1000),
     {LENGTH: str(len(BINARY_HEAD))}, 400),
    ("binary past header length", "POST", INFER, BINARY_HEAD + bytes(IMAGE_BYTES),
     {LENGTH: str(len(BINARY_HEAD) + 1)}, 400),
    ("header length not a number", "POST", INFER, BINARY_HEAD, {LENGTH: "many"}, 400),
    ("missing input", "POST", INFER,
     _header({"name": "pixels", "datatype": "FP32", "shape": [1], "data": [1]}), {}, 400),
    ("no inputs", "POST", INFER, _header(), {}, 400),
    ("malformed JSON", "POST", INFER, b'{"inputs": [{"name": ', {}, 400),
    ("empty body", "POST", INFER, b"", {}, 400),
    ("not an image", "POST", INFER,
     _header({"name": "input", "datatype": "BYTES", "shape": [1], "data": ["aGVsbG8="]}), {}, 400),
    ("bad gzip", "POST", INFER, b"not gzip", {"Content-Encoding": "gzip"}, 400),
    ("unknown encoding", "POST", INFER, BINARY_HEAD, {"Content-Encoding": "br"}, 415),
]
# fmt: on


@pytest.mark.parametrize(
    ("what", "method", "path", "body", "headers", "status"), BAD, ids=[b[0] for b in BAD]
)
def test_malformed_requests_answer_v2_errors(
    server: RunningServer,
    what: str,
    method: str,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
) -> None:
    response = httpx.request(method, server.url + path, content=body, headers=headers, timeout=60)
    assert response.status_code == status, response.text
    answer = response.json()
    assert list(answer) == ["error"], answer
    assert isinstance(answer["error"], str) and answer["error"]


def test_gzip_bomb_is_refused(server: RunningServer) -> None:
    packer, zeros = zlib.compressobj(9, wbits=31), bytes(2**20)  # gzip framing
    bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()
    assert len(bomb) < 300_000  # 200 MiB of zeros
    response = httpx.post(
        f"{server.url}{INFER}", content=bomb, timeout=60, headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 413, response.text
    assert list(response.json()) == ["error"]


def test_still_serving_after_bad_requests(
    client: triton.InferenceServerClient, reference: ort.InferenceSession, batch: np.ndarray
) -> None:
    result = client.infer(MODEL, [_fp32(batch[1:], True)])
    np.testing.assert_allclose(
        result.as_numpy("logits"), _run(reference, batch[1:], "logits")[0], atol=ATOL
    )
    assert client.is_server_ready()
