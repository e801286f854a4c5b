"""fp16 on the CUDA provider agrees with fp32 on the CPU (runs only where a GPU really works)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import onnxruntime as ort
import pytest

from core.preprocess import PreprocessSpec, preprocess_bytes
from core.runtime import nvidia_driver_present
from tests.support import RunningServer, running_server

CUDA = "CUDAExecutionProvider"
pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        CUDA not in ort.get_available_providers() or not nvidia_driver_present(),
        reason="needs onnxruntime's CUDA provider and an NVIDIA driver",
    ),
]


@pytest.fixture(scope="module")
def fp16_artifacts(tmp_path_factory: pytest.TempPathFactory, checkpoint_path: Path) -> Path:
    """The seeded model exported with its fp16 variant, by the project's own `alexnet export`."""
    from cli.main import main

    out = tmp_path_factory.mktemp("artifacts-fp16")
    assert main(["export", "--checkpoint", str(checkpoint_path), "--out", str(out), "--fp16"]) == 0
    return out


@pytest.fixture(scope="module")
def gpu_server(fp16_artifacts: Path, artefact_dir: Path) -> Iterator[RunningServer]:
    """`alexnet serve` on CUDA with the fp16 model."""
    with running_server(
        fp16_artifacts, artefact_dir / "logs", provider="cuda", precision="fp16"
    ) as running:
        yield running


def cpu_logits(artifacts: Path, batch: np.ndarray) -> np.ndarray:
    """The fp32 model on the CPU provider: the reference."""
    session = ort.InferenceSession(
        str(artifacts / "alexnet.onnx"), providers=["CPUExecutionProvider"]
    )
    return np.asarray(session.run(["logits"], {"input": batch})[0])


def test_fp16_on_cuda_matches_fp32_on_cpu(
    gpu_server: RunningServer, fp16_artifacts: Path, photos: dict[str, bytes]
) -> None:
    info = httpx.get(f"{gpu_server.url}/v1/model", timeout=30).json()
    assert info["provider"] == CUDA, info["provider"]
    assert info["precision"] == "fp16"
    spec = PreprocessSpec.model_validate(info["preprocess"])
    batch = np.stack([preprocess_bytes(blob, spec) for blob in photos.values()])
    body = {
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(batch.shape),
                "data": batch.ravel().tolist(),
            }
        ]
    }
    response = httpx.post(f"{gpu_server.url}/v2/models/alexnet/infer", json=body, timeout=120)
    assert response.status_code == 200, response.text
    (output,) = response.json()["outputs"]
    got = np.asarray(output["data"], dtype=np.float32).reshape(output["shape"])
    expected = cpu_logits(fp16_artifacts, batch)
    assert got.shape == expected.shape == (len(photos), 10)
    # fp16 keeps ~3 significant digits through eight layers: compare at the logits' own scale.
    scale = float(np.abs(expected).max())
    np.testing.assert_allclose(got, expected, rtol=0, atol=0.02 * scale + 1e-3)
    assert (got.argmax(1) == expected.argmax(1)).mean() >= 0.8


def test_predict_on_cuda_fp16(gpu_server: RunningServer, photos: dict[str, bytes]) -> None:
    files = [("image", (f"{name}.jpg", blob, "image/jpeg")) for name, blob in photos.items()]
    response = httpx.post(
        f"{gpu_server.url}/v1/predict", files=files, data={"top_k": "3"}, timeout=120
    )
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["filename"] for r in results] == [f"{name}.jpg" for name in photos]
    for result in results:
        probabilities = [p["probability"] for p in result["predictions"]]
        assert probabilities == sorted(probabilities, reverse=True)
        assert all(0 <= p <= 1 for p in probabilities)
