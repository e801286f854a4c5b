"""Write a Triton Inference Server model repository for an exported AlexNet.

Triton serves the very same `alexnet.onnx` with its onnxruntime backend. The
`config.pbtxt` is core/triton_config.py's ModelConfig (the one the service answers
at /v2/models/{m}/config) rendered as protobuf text, built from the ONNX graph itself
(names, element types and shapes of every input and output), so it cannot disagree
with the model; it is checked against the manifest, so a model and a manifest from
two different exports are refused rather than written.

    repository/
      <name>/config.pbtxt      platform onnxruntime_onnx, dynamic batching
      <name>/labels.txt        one class per line, Triton's classification extension
      <name>/<version>/model.onnx
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import onnx
from onnx import TensorProto

from core.errors import UserFacingError
from core.manifest import LOGITS_NAME, Manifest
from core.triton_config import LABELS_FILE, MODEL_FILE, TensorSpec, model_config

# ONNX element type -> Open Inference Protocol datatype (core maps it to Triton's DataType).
DATATYPES: dict[int, str] = {
    TensorProto.FLOAT: "FP32",
    TensorProto.FLOAT16: "FP16",
    TensorProto.DOUBLE: "FP64",
    TensorProto.INT8: "INT8",
    TensorProto.UINT8: "UINT8",
    TensorProto.INT32: "INT32",
    TensorProto.INT64: "INT64",
    TensorProto.BOOL: "BOOL",
}
# ModelConfig fields whose values are enum names, written bare in protobuf text.
ENUM_FIELDS = frozenset({"data_type", "format", "kind"})
# Triton takes model names from directory names; keep them to a portable set.
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")


def graph_tensors(model: onnx.ModelProto) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """The graph's inputs and outputs; every one must have a dynamic first (batch) axis."""
    initializers = {init.name for init in model.graph.initializer}
    inputs = [_spec(v) for v in model.graph.input if v.name not in initializers]
    return inputs, [_spec(v) for v in model.graph.output]


def _spec(value: onnx.ValueInfoProto) -> TensorSpec:
    tensor = value.type.tensor_type
    if tensor.elem_type not in DATATYPES:
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
        value.name, DATATYPES[tensor.elem_type], tuple(int(d.dim_value) for d in dims[1:])
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


def render_config(config: Mapping[str, Any]) -> str:
    """config.pbtxt: the ModelConfig dict in protobuf text format."""
    header = (
        "# Written by alexnet-serving (model/triton.py) from the ONNX graph; do not edit.\n"
        "# kind KIND_AUTO: one instance per GPU, or on the CPU where Triton sees none.\n"
    )
    return header + "".join(f"{line}\n" for line in _text(config, ""))


def _text(message: Mapping[str, Any], pad: str) -> list[str]:
    """Protobuf text lines of a message. Empty lists and maps are the defaults: left out
    (the only maps here, `parameters` and `priority_queue_policy`, are always empty)."""
    lines: list[str] = []
    for key, value in message.items():
        if isinstance(value, Mapping):
            if value:
                lines += [f"{pad}{key} {{", *_text(value, pad + "  "), f"{pad}}}"]
        elif isinstance(value, list):
            if value and isinstance(value[0], Mapping):
                blocks = [[f"{pad}  {{", *_text(v, pad + "    "), f"{pad}  }}"] for v in value]
                lines.append(f"{pad}{key} [")
                for index, block in enumerate(blocks):
                    block[-1] += "," if index < len(blocks) - 1 else ""
                    lines += block
                lines.append(f"{pad}]")
            elif value:
                lines.append(f"{pad}{key}: [ {', '.join(_scalar(key, v) for v in value)} ]")
        else:
            lines.append(f"{pad}{key}: {_scalar(key, value)}")
    return lines


def _scalar(key: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    # Names are checked against a portable set, so JSON's escaping is protobuf's.
    return str(value) if key in ENUM_FIELDS else json.dumps(value)


def write_triton_repository(
    onnx_path: Path,
    manifest: Manifest,
    out_dir: Path,
    *,
    max_batch_size: int = 32,
    max_queue_delay_us: int = 5000,
) -> Path:
    """Write out_dir/<name>/{config.pbtxt, labels.txt, <version>/model.onnx}; return that folder.

    The version folder is the manifest's serving version (its version when that is a
    positive integer, Triton's rule, else 1). An earlier folder of the same model is
    replaced whole.
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
    version_dir = manifest.serving_version

    out_dir.mkdir(parents=True, exist_ok=True)
    final = out_dir / name
    # Build beside the target and swap it in, so a failed write never leaves half a model
    # where Triton would load it.
    staging = out_dir / f".{name}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    (staging / version_dir).mkdir(parents=True)
    shutil.copyfile(onnx_path, staging / version_dir / MODEL_FILE)
    (staging / LABELS_FILE).write_text("".join(f"{label}\n" for label in labels))
    config = model_config(
        name, inputs, outputs, max_batch_size=max_batch_size, max_queue_delay_us=max_queue_delay_us
    )
    (staging / "config.pbtxt").write_text(render_config(config))
    if final.exists():
        old = out_dir / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        final.rename(old)
        staging.rename(final)
        shutil.rmtree(old)
    else:
        staging.rename(final)
    return final
