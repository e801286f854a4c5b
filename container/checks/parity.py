"""The serving image answers as `alexnet serve` from the venv does, with the same settings.

Both servers get the same requests (predict, activations as JSON and npz, convolve as npy
and JSON, a v2 infer); labels and efficiency figures must be equal, every number within
TOLERANCE, both must run the CPU provider, and the container's log must stay quiet (the
GPU image on a GPU-less host falls back without a warning).
"""

from __future__ import annotations

import io
import os
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from benchmarks.serverproc import started_server
from container.checks.harness import expect, post, serving
from container.podman import Podman

TOLERANCE = 1e-5


def _close(name: str, got: Any, want: Any) -> float:
    got_array, want_array = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    expect(
        got_array.shape == want_array.shape,
        f"{name}: shape {got_array.shape} != {want_array.shape}",
    )
    diff = float(np.max(np.abs(got_array - want_array))) if got_array.size else 0.0
    expect(diff <= TOLERANCE, f"{name}: differs by {diff:.3g} (> {TOLERANCE:g})")
    return diff


def _requests(photos: dict[str, bytes]) -> list[tuple[str, str, Any, dict[str, str]]]:
    """What both servers are asked: (name, path, files, form fields)."""
    first, second = sorted(photos)[:2]
    gray = next((n for n in sorted(photos) if n == "camera"), first)
    return [
        (
            "predict",
            "/v1/predict",
            [
                ("image", (f"{first}.jpg", photos[first], "image/jpeg")),
                ("image", (f"{second}.jpg", photos[second], "image/jpeg")),
            ],
            {"top_k": "5"},
        ),
        (
            "activations",
            "/v1/activations",
            {"image": ("a.jpg", photos[first])},
            {"layers": "conv1,norm2,pool3,fc8", "format": "json"},
        ),
        (
            "activations-npz",
            "/v1/activations",
            {"image": ("a.jpg", photos[second])},
            {"layers": "conv5,fc7", "format": "npz"},
        ),
        (
            "convolve",
            "/v1/convolve",
            {"image": ("g.jpg", photos[gray])},
            {"preset": "sobel_x", "mode": "convolution", "padding": "same", "format": "npy"},
        ),
        (
            "convolve-json",
            "/v1/convolve",
            {"image": ("g.jpg", photos[gray])},
            {"kernel": "[[1, -1]]", "mode": "cross_correlation", "format": "json"},
        ),
    ]


def _v2_body() -> dict[str, Any]:
    rng = np.random.default_rng(0)
    tensor = rng.standard_normal((2, 3, 227, 227), dtype=np.float32)
    return {
        "id": "image-check",
        "inputs": [
            {
                "name": "input",
                "datatype": "FP32",
                "shape": list(tensor.shape),
                "data": tensor.ravel().tolist(),
            }
        ],
        "outputs": [{"name": "logits"}, {"name": "fc7"}],
    }


def answers(url: str, photos: dict[str, bytes]) -> dict[str, Any]:
    """Every answer of one server, decoded."""
    out: dict[str, Any] = {}
    for name, path, files, data in _requests(photos):
        response = post(url, path, files, data)
        if name.endswith("npz"):
            with np.load(io.BytesIO(response.content)) as arrays:
                out[name] = {key: arrays[key] for key in arrays.files}
        elif name == "convolve":
            out[name] = np.load(io.BytesIO(response.content))
        else:
            out[name] = response.json()
    response = httpx.post(f"{url}/v2/models/alexnet/infer", json=_v2_body(), timeout=120)
    expect(response.status_code == 200, f"v2 infer: {response.status_code} {response.text[:300]}")
    out["v2"] = {o["name"]: np.reshape(o["data"], o["shape"]) for o in response.json()["outputs"]}
    out["model"] = httpx.get(f"{url}/v1/model", timeout=30).json()
    return out


def compare(container: dict[str, Any], venv: dict[str, Any]) -> list[str]:
    """The container's answers against the venv server's: same labels, numbers within 1e-5."""
    lines = []
    for index, (got, want) in enumerate(
        zip(container["predict"]["results"], venv["predict"]["results"], strict=True)
    ):
        got_labels = [p["label"] for p in got["predictions"]]
        want_labels = [p["label"] for p in want["predictions"]]
        expect(got_labels == want_labels, f"predict #{index}: {got_labels} != {want_labels}")
        diff = _close(
            f"predict #{index}",
            [p["probability"] for p in got["predictions"]],
            [p["probability"] for p in want["predictions"]],
        )
        top = got["predictions"][0]
        lines.append(
            f"  /v1/predict image {index}: top-1 {top['label']} p={top['probability']:.6f} in "
            f"both; top-5 labels equal; max |dp| {diff:.1e}"
        )
    worst = 0.0
    for layer, stats in venv["activations"]["layers"].items():
        got = container["activations"]["layers"][layer]
        expect(got["shape"] == stats["shape"], f"{layer} shape {got['shape']} != {stats['shape']}")
        for key in ("mean", "std", "min", "max", "sparsity"):
            worst = max(worst, _close(f"{layer}.{key}", got[key], stats[key]))
    lines.append(
        f"  /v1/activations json ({', '.join(venv['activations']['layers'])}): max |d| {worst:.1e}"
    )
    worst = max(
        _close(f"npz {key}", container["activations-npz"][key], value)
        for key, value in venv["activations-npz"].items()
    )
    lines.append(
        f"  /v1/activations npz ({', '.join(venv['activations-npz'])}): max |d| {worst:.1e}"
    )
    diff = _close("convolve npy", container["convolve"], venv["convolve"])
    lines.append(f"  /v1/convolve npy {venv['convolve'].shape}: max |d| {diff:.1e}")
    got_json, want_json = container["convolve-json"], venv["convolve-json"]
    expect(got_json["shape"] == want_json["shape"], "convolve json shape")
    expect(got_json["efficiency"] == want_json["efficiency"], "convolve efficiency figures")
    lines.append(f"  /v1/convolve json: shape {got_json['shape']}, efficiency figures equal")
    worst = max(
        _close(f"v2 {key}", container["v2"][key], value) for key, value in venv["v2"].items()
    )
    lines.append(
        f"  /v2/models/alexnet/infer FP32 [2,3,227,227] -> logits, fc7: max |d| {worst:.1e}"
    )
    return lines


def parity(
    podman: Podman,
    image: str,
    service: dict[str, Any],
    artifacts: Path,
    photos: dict[str, bytes],
    log_dir: Path,
) -> list[str]:
    """The image on the CPU answers like `alexnet serve` from the venv with the same settings."""
    settings = {
        key.removeprefix("ALEXNET_").lower(): str(value)
        for key, value in service.get("environment", {}).items()
        if key not in ("ALEXNET_ARTIFACTS", "ALEXNET_HOST", "ALEXNET_PORT")
    }
    with serving(podman, image, service, artifacts, f"alexnet-check-parity-{os.getpid()}") as box:
        started = podman.inspect(box.name)["State"]
        from_container = answers(box.url, photos)
        log = box.logs()
    with started_server(artifacts, log_dir / "venv-server.log", **settings) as venv_server:
        from_venv = answers(venv_server.url, photos)
    provider = from_container["model"].get("provider")
    expect(
        provider == from_venv["model"].get("provider") == "CPUExecutionProvider",
        f"providers: container {provider}, venv {from_venv['model'].get('provider')}",
    )
    # Quietly: no warning, error, traceback or onnxruntime complaint (GPU image, no GPU).
    noisy = [
        line
        for line in log.splitlines()
        if "Traceback" in line
        or "[W:" in line
        or "[E:" in line
        or any(f'"level": "{level}"' in line for level in ("warning", "error", "critical"))
    ]
    expect(not noisy, "container log is not quiet:\n" + "\n".join(noisy))
    lines = [
        f"served {image} ({started['Status']}); provider {provider}; log has no error or traceback",
        *compare(from_container, from_venv),
    ]
    return lines
