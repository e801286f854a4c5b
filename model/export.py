"""Export a trained AlexNet to ONNX with every layer as an output, verify it, write the manifest."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import torch
from pydantic import ValidationError

from core.errors import UserFacingError
from core.manifest import (
    INPUT_NAME,
    LOGITS_NAME,
    InputTensor,
    Manifest,
    ModelFile,
    Precision,
    Training,
    file_facts,
    write_manifest,
)
from core.onnx_tools import OPSET
from core.preprocess import PreprocessSpec
from core.runtime import cpu_session, int8_session_config, run_all
from model.architecture import layer_table, parameter_count
from model.channel_patches import export_channel_patches
from model.export_config import ExportConfig
from model.network import AlexNet
from model.onnx_graph import build_onnx_model, to_fp16
from model.verify_images import sample_batches

# The largest |onnxruntime - PyTorch| accepted on any activation, after scaling by
# max(1, |largest activation of that layer|): deep layers reach values of 50 and
# more, where float32 round-off between two correct kernels alone is above 1e-5.
PARITY_TOLERANCE = 1e-4
FILE_NAMES = {"fp32": "alexnet.onnx", "int8": "alexnet.int8.onnx", "fp16": "alexnet.fp16.onnx"}


def load_source(config: ExportConfig) -> tuple[AlexNet, list[str], Training]:
    """The model to export, its labels and where its weights came from."""
    if config.torchvision_weights is not None:
        from model.torchvision_compat import imagenet_labels, load_torchvision_model

        model = load_torchvision_model(config.torchvision_weights)
        labels = (
            imagenet_labels()
            if model.num_classes == 1000
            else [f"class_{i}" for i in range(model.num_classes)]
        )
        origin = {
            "dataset": "ImageNet (torchvision weights)",
            "weights": config.torchvision_weights.name,
        }
        return model, labels, Training.model_validate(origin)
    from model.checkpoint import load_model

    model, checkpoint = load_model(config.checkpoint)
    try:
        training = Training.model_validate(checkpoint.get("training") or {"dataset": "unknown"})
    except ValidationError as exc:
        raise UserFacingError(f"{config.checkpoint}: unexpected training metadata: {exc}") from None
    return model, list(checkpoint["labels"]), training


def export(model: AlexNet, labels: list[str], training: Training, config: ExportConfig) -> Manifest:
    """Write alexnet.onnx (+ variants) and manifest.json; refuse a model that fails parity."""
    model = model.eval()
    arch = model.arch
    if len(labels) != model.num_classes:
        raise UserFacingError(f"{len(labels)} labels for {model.num_classes} classes")
    preprocess = PreprocessSpec.for_input(arch.input_size)
    weights = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    onnx_model = build_onnx_model(arch, weights)
    verify_batch, calibration, validation = sample_batches(config.data, preprocess, arch)
    parity = check_parity(model, onnx_model, verify_batch)
    out = config.out
    out.mkdir(parents=True, exist_ok=True)
    fp32 = _save(onnx_model, out / FILE_NAMES["fp32"])
    del onnx_model  # 230 MB: the variants below start from the file
    files: dict[Precision, ModelFile] = {
        "fp32": ModelFile(**file_facts(fp32), max_abs_diff_vs_pytorch=parity)
    }
    if config.int8:
        from core.cpu import int8_isa
        from model.quantize import quantize_int8

        int8 = out / FILE_NAMES["int8"]
        isa = int8_isa() if config.int8_isa == "auto" else config.int8_isa
        quantization = quantize_int8(fp32, int8, calibration, isa=isa)
        # Measured as the service would run it on this machine (core.runtime).
        serving = int8_session_config(quantization.weights.bits, int8_isa())
        agreement = top1_agreement(fp32, int8, validation, serving)
        files["int8"] = ModelFile(
            **file_facts(int8), top1_agreement=agreement, quantization=quantization
        )
    if config.fp16:
        fp16 = _save(to_fp16(onnx.load(str(fp32))), out / FILE_NAMES["fp16"])
        agreement = top1_agreement(fp32, fp16, validation)
        files["fp16"] = ModelFile(**file_facts(fp16), top1_agreement=agreement)
    explain = None
    if config.explain:
        from model.explain_export import write_explain_model

        # It reads its weights from inside alexnet.onnx: about 13 KB, not a second copy.
        explain = write_explain_model(model, verify_batch, out, weights_from=fp32)
    manifest = Manifest(
        name=config.name,
        version=config.version,
        variant=arch.variant,
        opset=OPSET,
        files=files,
        input=InputTensor(
            name=INPUT_NAME, shape=(3, arch.input_size, arch.input_size), dtype="float32"
        ),
        outputs=[LOGITS_NAME, *arch.layer_names],
        preprocess=preprocess,
        labels=list(labels),
        num_classes=len(labels),
        parameters=parameter_count(arch),
        layers=layer_table(arch),
        training=training,
        explain=explain,
        channel_patches=export_channel_patches(fp32, arch, preprocess, config),
    )
    write_manifest(out, manifest)
    return manifest


def check_parity(
    model: AlexNet, onnx_model: onnx.ModelProto, batch: np.ndarray
) -> dict[str, float]:
    """Max abs difference per output between onnxruntime and PyTorch; raise if any is too big."""
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in model.forward_all(torch.from_numpy(batch)).items()}
    expected[LOGITS_NAME] = expected[model.arch.layers[-1].name]
    got = run_all(cpu_session(onnx_model.SerializeToString()), {INPUT_NAME: batch})
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


def top1_agreement(
    reference: Path,
    candidate: Path,
    batches: list[np.ndarray],
    config: Mapping[str, str] | None = None,
) -> float:
    """Fraction of images whose top-1 class is the same under both models."""
    ref_session, cand_session = cpu_session(reference), cpu_session(candidate, config)
    same = total = 0
    for batch in batches:
        ref = ref_session.run([LOGITS_NAME], {INPUT_NAME: batch})[0].argmax(1)
        cand = cand_session.run([LOGITS_NAME], {INPUT_NAME: batch})[0].argmax(1)
        same += int((ref == cand).sum())
        total += len(batch)
    return same / max(total, 1)


def _save(onnx_model: onnx.ModelProto, path: Path) -> Path:
    partial = path.with_suffix(".partial")
    onnx.save(onnx_model, partial)
    partial.replace(path)
    return path
