"""Write a Triton Inference Server model repository for an exported AlexNet.

Triton serves the very same `alexnet.onnx` with its onnxruntime backend. The
`config.pbtxt` is derived from the ONNX graph itself (names, element types and
shapes of every input and output), so it cannot disagree with the model, and it
is checked against the manifest, so a model and a manifest from two different
exports are refused rather than written.

    repository/
      <name>/config.pbtxt      platform onnxruntime_onnx, dynamic batching
      <name>/labels.txt        one class per line, Triton's classification extension
      <name>/<version>/model.onnx
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import onnx
from onnx import TensorProto

from core.errors import UserFacingError
from core.manifest import LOGITS_NAME, Manifest

LABELS_FILE = "labels.txt"

# ONNX element type -> Triton data type (model_config.proto's DataType).
TRITON_TYPES: dict[int, str] = {
    TensorProto.FLOAT: "TYPE_FP32",
    TensorProto.FLOAT16: "TYPE_FP16",
    TensorProto.DOUBLE: "TYPE_FP64",
    TensorProto.INT8: "TYPE_INT8",
    TensorProto.UINT8: "TYPE_UINT8",
    TensorProto.INT32: "TYPE_INT32",
    TensorProto.INT64: "TYPE_INT64",
    TensorProto.BOOL: "TYPE_BOOL",
}
# Triton takes model names from directory names; keep them to a portable set.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


@dataclass(frozen=True)
class TensorSpec:
    """One graph input or output as Triton sees it: dims exclude the batch axis."""

    name: str
    data_type: str
    dims: tuple[int, ...]


def graph_tensors(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's inputs and outputs; every one must have a dynamic first (batch) axis."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_spec(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [_spec(v) for v in model.graph.output]


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    if tensor.elem_type not in TRITON_TYPES:
        raise UserFacingError(
            f"ONNX tensor {value.name!r}: element type "
            f"{TensorProto.DataType.Name(tensor.elem_type)} has no Triton type"
        )
    dims = list(tensor.shape.dim)
    # Triton batches on axis 0 (max_batch_size > 0), so that axis must be dynamic and
    # every other one fixed.
    if not dims or dims[0].HasField("dim_value"):
        raise UserFacingError(f"ONNX tensor {value.name!r} has no dynamic batch axis")
    if any(not d.HasField("dim_value") for d in dims[1:]):
        raise UserFacingError(f"ONNX tensor {value.name!r} has a dynamic axis besides the batch")
    return TensorSpec(
        value.name, TRITON_TYPES[tensor.elem_type], tuple(int(d.dim_value) for d in dims[1:])
    )


def check_against_manifest(
    manifest: Manifest, inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec]
) -> None:
    """Refuse a graph whose input, logits or layer outputs differ from the manifest."""
    expected_input = manifest.input
    if [(t.name, t.dims) for t in inputs] != [(expected_input.name, expected_input.shape)]:
        raise UserFacingError(
            f"ONNX inputs {[(t.name, t.dims) for t in inputs]} differ from the "
            f"manifest's {expected_input.name!r} {list(expected_input.shape)}"
        )
    by_name = {t.name: t for t in outputs}
    logits = by_name.get(LOGITS_NAME)
    if logits is None or logits.dims != (len(manifest.labels),):
        raise UserFacingError(
            f"ONNX output {LOGITS_NAME!r} {logits and logits.dims} does not "
            f"match the manifest's {len(manifest.labels)} labels"
        )
    for layer in manifest.layers:
        got = by_name.get(layer.name)
        if got is None or list(got.dims) != layer.output_shape:
            raise UserFacingError(
                f"ONNX output {layer.name!r} {got and got.dims} differs "
                f"from the manifest's {layer.output_shape}"
            )


def render_config(
    name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    *,
    max_batch_size: int,
    max_queue_delay_us: int,
) -> str:
    """config.pbtxt (protobuf text format of Triton's ModelConfig)."""

    def block(spec: TensorSpec) -> str:
        dims = ", ".join(str(d) for d in spec.dims)
        label = f'\n    label_filename: "{LABELS_FILE}"' if spec.name == LOGITS_NAME else ""
        return (
            f'  {{\n    name: "{spec.name}"\n    data_type: {spec.data_type}\n'
            f"    dims: [ {dims} ]{label}\n  }}"
        )

    input_blocks = ",\n".join(block(spec) for spec in inputs)
    output_blocks = ",\n".join(block(spec) for spec in outputs)
    return (
        "# Written by alexnet-serving (model/triton.py) from the ONNX graph; do not edit.\n"
        f'name: "{name}"\n'
        'platform: "onnxruntime_onnx"\n'
        f"max_batch_size: {max_batch_size}\n"
        f"input [\n{input_blocks}\n]\n"
        f"output [\n{output_blocks}\n]\n"
        "dynamic_batching {\n"
        f"  max_queue_delay_microseconds: {max_queue_delay_us}\n"
        "}\n"
        "# No `kind`: KIND_AUTO, one instance per GPU, or on the CPU where Triton sees none.\n"
        "instance_group [\n  {\n    count: 1\n  }\n]\n"
    )


def write_triton_repository(
    onnx_path: Path,
    manifest: Manifest,
    out_dir: Path,
    *,
    max_batch_size: int = 32,
    max_queue_delay_us: int = 5000,
) -> Path:
    """Write out_dir/<name>/{config.pbtxt, labels.txt, <version>/model.onnx}; return that folder.

    The version folder is the manifest's version when it is a positive integer (Triton's
    rule), else 1. An earlier folder of the same model is replaced whole.
    """
    name = manifest.name
    if not _NAME.match(name):
        raise UserFacingError(f"model name {name!r} cannot be a Triton model directory")
    if max_batch_size < 1:
        raise UserFacingError("max_batch_size must be at least 1 (the model batches on axis 0)")
    labels = manifest.labels
    if any("\n" in label or "\r" in label for label in labels):
        raise UserFacingError("a label contains a line break; labels.txt is one label per line")
    inputs, outputs = graph_tensors(onnx.load(str(onnx_path), load_external_data=False))
    check_against_manifest(manifest, inputs, outputs)
    version = manifest.version
    version_dir = version if version.isdigit() and int(version) > 0 else "1"

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    # Build beside the target and swap it in, so a failed write never leaves half a model
    # where Triton would load it.
    staging = out_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / version_dir).mkdir(parents=True)
    shutil.copyfile(onnx_path, staging / version_dir / "model.onnx")
    (staging / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels))
    (staging / "config.pbtxt").write_text(
        render_config(
            name,
            inputs,
            outputs,
            max_batch_size=max_batch_size,
            max_queue_delay_us=max_queue_delay_us,
        )
    )
    if final.exists():
        old = out_dir / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)
    return final
