"""KServe's own Python SDK (`InferenceRESTClient`, protocols v1 and v2) against the real server."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from core.manifest import read_manifest
from core.preprocess import preprocess_bytes
from tests.support import RunningServer

kserve = pytest.importorskip("kserve", reason="kserve==0.21.0, a dev dependency, is not installed")

VIEWS = ["alexnet", "alexnet_image", "alexnet_logits"]
T = TypeVar("T")


def with_client(protocol: str, body: Callable[[Any], Awaitable[T]]) -> T:
    async def run() -> T:
        client = kserve.InferenceRESTClient(
            kserve.RESTConfig(protocol=protocol, retries=0, timeout=120)
        )
        try:
            return await body(client)
        finally:
            await client.close()

    return asyncio.run(run())


@pytest.fixture(scope="module")
def reference(exported_artifacts: Path) -> ort.InferenceSession:
    return ort.InferenceSession(
        str(exported_artifacts / "alexnet.onnx"), providers=["CPUExecutionProvider"]
    )


def test_v1_health_predict_and_explain(server: RunningServer, photos: dict[str, bytes]) -> None:
    image = base64.b64encode(photos["chelsea"]).decode()

    async def body(client: Any) -> None:
        assert await client.is_server_live(server.url) is True
        for name in VIEWS:
            assert await client.is_model_ready(server.url, name) is True
        with pytest.raises(httpx.HTTPStatusError, match="unknown model 'vgg'"):
            await client.is_model_ready(server.url, "vgg")
        instances = {"instances": [{"image_bytes": {"b64": image}, "key": "cat"}], "top_k": 2}
        answer = await client.infer(server.url, instances, model_name="alexnet")
        (prediction,) = answer["predictions"]
        assert prediction["key"] == "cat" and len(prediction["top_k"]) == 2
        explained = await client.explain(
            server.url, "alexnet", {"instances": instances["instances"], "method": "gradcam"}
        )
        (explanation,) = explained["explanations"]
        assert explanation["key"] == "cat" and explanation["gradcam"]["layer"] == "conv5"
        with pytest.raises(httpx.HTTPStatusError, match="not valid base64"):
            await client.infer(server.url, {"instances": [{"b64": "@@"}]}, model_name="alexnet")

    with_client("v1", body)


def test_v2_health_and_inference(
    server: RunningServer,
    reference: ort.InferenceSession,
    photos: dict[str, bytes],
    exported_artifacts: Path,
) -> None:
    spec = read_manifest(exported_artifacts).preprocess
    jpeg = photos["coffee"]
    tensor = preprocess_bytes(jpeg, spec, fast_jpeg=True)[None]
    expected = reference.run(["logits"], {"input": tensor})[0]

    async def body(client: Any) -> None:
        assert await client.is_server_live(server.url) is True
        assert await client.is_server_ready(server.url) is True
        for name in VIEWS:
            assert await client.is_model_ready(server.url, name) is True
        assert await client.is_model_ready(server.url, "vgg") is False

        floats = kserve.InferInput("input", list(tensor.shape), "FP32")
        floats.set_data_from_numpy(tensor, binary_data=True)
        request = kserve.InferRequest(model_name="alexnet_logits", infer_inputs=[floats])
        answer = await client.infer(server.url, request, model_name="alexnet_logits")
        assert answer.model_name == "alexnet_logits"
        np.testing.assert_allclose(answer.outputs[0].as_numpy(), expected, atol=1e-4)

        images = kserve.InferInput("input", [1, 1], "BYTES")
        images.set_data_from_numpy(np.array([[jpeg]], dtype=np.object_), binary_data=True)
        request = kserve.InferRequest(model_name="alexnet_image", infer_inputs=[images])
        answer = await client.infer(server.url, request, model_name="alexnet_image")
        assert answer.model_name == "alexnet_image"
        np.testing.assert_allclose(answer.outputs[0].as_numpy(), expected, atol=1e-4)

    with_client("v2", body)
