"""The model views and their Triton configuration, spoken to by the real tritonclient.

The oracles: Triton's own ModelConfig schema (tritonclient's compiled proto, parsing
strictly), the config.pbtxt `alexnet export --triton` writes, and onnxruntime run
directly on the exported model.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import tritonclient.http as triton
from google.protobuf import json_format, text_format
from tritonclient.utils import InferenceServerException

from core.manifest import read_manifest
from core.preprocess import PreprocessSpec, preprocess_bytes
from model.triton import write_triton_repository
from tests.support import RunningServer, triton_protos

MODEL = "alexnet"
VIEWS = [MODEL, f"{MODEL}_image", f"{MODEL}_logits"]
ATOL = 1e-4
SERVER_MAX_WAIT_US = 20_000  # the session server runs with ALEXNET_MAX_BATCH_WAIT_MS=20


@pytest.fixture(scope="module")
def client(server: RunningServer) -> Iterator[triton.InferenceServerClient]:
    client = triton.InferenceServerClient(server.url.removeprefix("http://"), network_timeout=120.0)
    yield client
    client.close()


@pytest.fixture(scope="module")
def reference(exported_artifacts: Path) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(exported_artifacts / "alexnet.onnx"), providers=["CPUExecutionProvider"]
    )


@pytest.fixture(scope="module")
def spec(exported_artifacts: Path) -> PreprocessSpec:
    return read_manifest(exported_artifacts).preprocess


def _logits(reference: ort.InferenceSession, tensor: np.ndarray) -> np.ndarray:
    return reference.run(["logits"], {"input": tensor})[0]


def _no_floats(value: Any) -> bool:
    """True when every number in a JSON document is an integer (Triton's encoding)."""
    if isinstance(value, dict):
        return all(_no_floats(v) for v in value.values())
    if isinstance(value, list):
        return all(_no_floats(v) for v in value)
    return not isinstance(value, float)


def test_metadata_of_each_view(client: triton.InferenceServerClient) -> None:
    full, image, logits = (client.get_model_metadata(name) for name in VIEWS)
    assert [m["name"] for m in (full, image, logits)] == VIEWS
    assert all(m["versions"] == ["1"] for m in (full, image, logits))
    assert full["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 3, 227, 227]}]
    assert len(full["outputs"]) == 14
    assert image["inputs"] == [{"name": "input", "datatype": "BYTES", "shape": [-1, 1]}]
    assert logits["inputs"] == full["inputs"]
    for view in (image, logits):
        assert view["outputs"] == [{"name": "logits", "datatype": "FP32", "shape": [-1, 10]}]


def test_config_of_alexnet_is_the_exported_config_pbtxt(
    client: triton.InferenceServerClient, exported_artifacts: Path, tmp_path: Path
) -> None:
    """One source of truth: what /config says is what Triton would read from the export,
    but for `kind`, which a running server knows (the CPU here)."""
    served = client.get_model_config(MODEL)
    assert _no_floats(served)
    protos = triton_protos()
    parsed = json_format.ParseDict(served, protos.ModelConfig())  # strict: no unknown field
    folder = write_triton_repository(
        exported_artifacts / "alexnet.onnx",
        read_manifest(exported_artifacts),
        tmp_path,
        max_batch_size=32,
        max_queue_delay_us=SERVER_MAX_WAIT_US,
    )
    exported = text_format.Parse((folder / "config.pbtxt").read_text(), protos.ModelConfig())
    assert parsed.instance_group[0].kind == protos.ModelInstanceGroup.KIND_CPU
    exported.instance_group[0].kind = protos.ModelInstanceGroup.KIND_CPU
    assert parsed == exported
    assert client.get_model_config(MODEL, "1") == served


def test_config_of_the_image_and_logits_views(client: triton.InferenceServerClient) -> None:
    image, logits = client.get_model_config(VIEWS[1]), client.get_model_config(VIEWS[2])
    for config in (image, logits):
        json_format.ParseDict(config, triton_protos().ModelConfig())
        assert config["max_batch_size"] == 32
        assert config["dynamic_batching"]["max_queue_delay_microseconds"] == SERVER_MAX_WAIT_US
        assert [(o["name"], o["data_type"], o["dims"]) for o in config["output"]] == [
            ("logits", "TYPE_FP32", [10])
        ]
    assert (image["name"], logits["name"]) == (VIEWS[1], VIEWS[2])
    assert [(i["name"], i["data_type"], i["dims"]) for i in image["input"]] == [
        ("input", "TYPE_STRING", [1])
    ]
    assert [(i["name"], i["data_type"], i["dims"]) for i in logits["input"]] == [
        ("input", "TYPE_FP32", [3, 227, 227])
    ]


def test_each_view_answers_under_its_own_name(
    client: triton.InferenceServerClient,
    reference: ort.InferenceSession,
    photos: dict[str, bytes],
    spec: PreprocessSpec,
) -> None:
    blobs = [photos["chelsea"], photos["rocket"]]
    tensor = np.stack([preprocess_bytes(b, spec, fast_jpeg=True) for b in blobs])
    expected = _logits(reference, tensor)

    images = triton.InferInput("input", [2, 1], "BYTES")
    images.set_data_from_numpy(np.array(blobs, dtype=object).reshape(2, 1))
    result = client.infer(VIEWS[1], [images])
    assert result.get_response()["model_name"] == VIEWS[1]
    np.testing.assert_allclose(result.as_numpy("logits"), expected, atol=ATOL)

    floats = triton.InferInput("input", list(tensor.shape), "FP32")
    floats.set_data_from_numpy(tensor)
    result = client.infer(VIEWS[2], [floats], model_version="1")
    assert result.get_response()["model_name"] == VIEWS[2]
    assert [o["name"] for o in result.get_response()["outputs"]] == ["logits"]
    np.testing.assert_allclose(result.as_numpy("logits"), expected, atol=ATOL)


def test_views_refuse_what_they_do_not_declare(
    client: triton.InferenceServerClient, photos: dict[str, bytes]
) -> None:
    floats = triton.InferInput("input", [1, 3, 227, 227], "FP32")
    floats.set_data_from_numpy(np.zeros((1, 3, 227, 227), np.float32))
    with pytest.raises(InferenceServerException, match="datatype must be BYTES") as refused:
        client.infer(VIEWS[1], [floats])
    assert refused.value.status() == "400"
    images = triton.InferInput("input", [1], "BYTES")
    images.set_data_from_numpy(np.array([photos["coffee"]], dtype=object))
    with pytest.raises(InferenceServerException, match="datatype must be FP32"):
        client.infer(VIEWS[2], [images])
    with pytest.raises(InferenceServerException, match="outputs of model 'alexnet_logits'"):
        client.infer(VIEWS[2], [floats], outputs=[triton.InferRequestedOutput("conv1")])


def test_the_repository_index_lists_every_view(client: triton.InferenceServerClient) -> None:
    index = client.get_model_repository_index()
    assert index == [{"name": name, "version": "1", "state": "READY"} for name in VIEWS]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda c: c.get_model_config("vgg"), "unknown model 'vgg'"),
        (lambda c: c.get_model_config(MODEL, "2"), "unknown version '2'"),
        (lambda c: c.get_inference_statistics("vgg"), "unknown model 'vgg'"),
        (lambda c: c.get_inference_statistics(VIEWS[1], "7"), "unknown version '7'"),
        (lambda c: c.load_model("vgg"), "unknown model 'vgg'"),
        (lambda c: c.unload_model("vgg"), "unknown model 'vgg'"),
    ],
)
def test_unknown_models_and_versions_are_404(
    client: triton.InferenceServerClient, call: Any, message: str
) -> None:
    with pytest.raises(InferenceServerException, match=message) as refused:
        call(client)
    assert refused.value.status() == "404"
