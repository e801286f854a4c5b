"""Export a trained AlexNet to ONNX with every layer as an output, verify it, write the manifest."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch

from model.architecture import layer_table, parameter_count
from model.errors import UserFacingError
from model.network import AlexNet
from model.onnx_graph import INPUT_NAME, LOGITS_NAME, OPSET, build_onnx_model, to_fp16
from model.ort import cpu_session, run_all
from model.preprocess import PreprocessSpec
from model.verify_images import sample_batches

# The largest |onnxruntime - PyTorch| accepted on any activation, after scaling by
# max(1, |largest activation of that layer|): deep layers reach values of 50 and
# more, where float32 round-off between two correct kernels alone is above 1e-5.
PARITY_TOLERANCE = 1e-4


@dataclass
class ExportRequest:
    """What to export and where; built by the CLI."""

    model: AlexNet
    labels: list[str]
    out: Path
    name: str = "alexnet"
    version: str = "1"
    training: dict[str, Any] = field(default_factory=dict)
    data: Path | None = None  # images for verification and int8 calibration
    int8: bool = False
    fp16: bool = False


def export(request: ExportRequest) -> dict[str, Any]:
    """Write alexnet.onnx (+ variants) and manifest.json; refuse a model that fails parity."""
    model = request.model.eval()
    arch = model.arch
    if len(request.labels) != model.num_classes:
        raise UserFacingError(f"{len(request.labels)} labels for {model.num_classes} classes")
    preprocess = PreprocessSpec.for_input(arch.input_size)
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    onnx_model = build_onnx_model(arch, weights)
    verify_batch, calibration, validation = sample_batches(request.data, preprocess, arch)
    parity = check_parity(model, onnx_model, verify_batch)
    request.out.mkdir(parents=True, exist_ok=True)
    files = {"fp32": _write(onnx_model, request.out / "alexnet.onnx")}
    files["fp32"]["max_abs_diff_vs_pytorch"] = parity
    if request.int8:
        from model.quantize import quantize_int8

        int8_path = request.out / "alexnet.int8.onnx"
        quantize_int8(request.out / "alexnet.onnx", int8_path, calibration)
        files["int8"] = _describe(int8_path)
        files["int8"]["top1_agreement"] = top1_agreement(
            request.out / "alexnet.onnx", int8_path, validation
        )
    if request.fp16:
        fp16_path = request.out / "alexnet.fp16.onnx"
        files["fp16"] = _write(to_fp16(onnx_model), fp16_path)
        files["fp16"]["top1_agreement"] = top1_agreement(
            request.out / "alexnet.onnx", fp16_path, validation
        )
    manifest = build_manifest(request, preprocess, files)
    (request.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def check_parity(
    model: AlexNet, onnx_model: onnx.ModelProto, batch: np.ndarray
) -> dict[str, float]:
    """Max abs difference per output between onnxruntime and PyTorch; raise if any is too big."""
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in model.forward_all(torch.from_numpy(batch)).items()}
    expected[LOGITS_NAME] = expected[model.arch.layers[-1].name]
    got = run_all(cpu_session(onnx_model.SerializeToString()), batch)
    report: dict[str, float] = {}
    for name, reference in expected.items():
        diff = float(np.max(np.abs(got[name] - reference)))
        scale = max(1.0, float(np.max(np.abs(reference))))
        report[name] = diff
        if diff / scale > PARITY_TOLERANCE:
            raise UserFacingError(
                f"ONNX output {name!r} differs from PyTorch by {diff:.3g} (scale {scale:.3g}); "
                "refusing to write a model that does not match"
            )
    return report


def top1_agreement(reference: Path, candidate: Path, batches: list[np.ndarray]) -> float:
    """Fraction of images whose top-1 class is the same under both models."""
    ref_session, cand_session = cpu_session(reference), cpu_session(candidate)
    same = total = 0
    for batch in batches:
        ref = ref_session.run([LOGITS_NAME], {INPUT_NAME: batch})[0].argmax(1)
        cand = cand_session.run([LOGITS_NAME], {INPUT_NAME: batch})[0].argmax(1)
        same += int((ref == cand).sum())
        total += len(batch)
    return same / max(total, 1)


def _write(onnx_model: onnx.ModelProto, path: Path) -> dict[str, Any]:
    partial = path.with_suffix(".partial")
    onnx.save(onnx_model, partial)
    partial.replace(path)
    return _describe(path)


def _describe(path: Path) -> dict[str, Any]:
    from model.manifest_io import sha256_file

    return {"path": path.name, "sha256": sha256_file(path), "bytes": path.stat().st_size}


def build_manifest(
    request: ExportRequest, preprocess: PreprocessSpec, files: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    """Everything the service needs and nothing it must guess."""
    arch = request.model.arch
    rows = layer_table(arch)
    return {
        "format": "alexnet-manifest/1",
        "name": request.name,
        "version": request.version,
        "variant": arch.variant,
        "opset": OPSET,
        "files": files,
        "input": {
            "name": INPUT_NAME,
            "shape": [3, arch.input_size, arch.input_size],
            "dtype": "float32",
        },
        "outputs": [LOGITS_NAME, *arch.layer_names],
        "preprocess": preprocess.as_dict(),
        "labels": list(request.labels),
        "num_classes": len(request.labels),
        "parameters": parameter_count(arch),
        "layers": [row.as_dict() for row in rows],
        "training": request.training,
    }
