"""Triton's model configuration (ModelConfig) as one dict: the export's and the service's source.

`alexnet export --triton` renders it as config.pbtxt (model/triton.py) and the service
answers it as JSON at `GET /v2/models/{m}/config` (service/v2/config.py); both build it
here from the tensors and the batching settings, so the two cannot disagree.

The dict has the shape Triton itself answers: protobuf JSON with the field names kept,
every primitive printed and int64 fields as JSON numbers (core's ModelConfigToJson), enums
as their names. So it holds the fields clients read (perf_analyzer: `max_batch_size`, the
tensor names, `dynamic_batching`) and the defaults Triton fills in, nothing Triton lacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.manifest import LOGITS_NAME

PLATFORM = "onnxruntime_onnx"
BACKEND = "onnxruntime"
MODEL_FILE = "model.onnx"
LABELS_FILE = "labels.txt"  # one class per line: Triton's classification extension

# Open Inference Protocol datatype -> ModelConfig's DataType. Triton's config calls the
# protocol's BYTES TYPE_STRING.
CONFIG_TYPES = {
    "BOOL": "TYPE_BOOL",
    "UINT8": "TYPE_UINT8",
    "UINT16": "TYPE_UINT16",
    "UINT32": "TYPE_UINT32",
    "UINT64": "TYPE_UINT64",
    "INT8": "TYPE_INT8",
    "INT16": "TYPE_INT16",
    "INT32": "TYPE_INT32",
    "INT64": "TYPE_INT64",
    "FP16": "TYPE_FP16",
    "FP32": "TYPE_FP32",
    "FP64": "TYPE_FP64",
    "BYTES": "TYPE_STRING",
}
# KIND_AUTO: Triton picks a GPU where it sees one, else the CPU (what an export says);
# a running server says where it really runs.
Kind = Literal["KIND_AUTO", "KIND_CPU", "KIND_GPU"]


@dataclass(frozen=True)
class TensorSpec:
    """One input or output: its protocol datatype (FP32, BYTES...) and dims without the batch."""

    name: str
    datatype: str
    dims: tuple[int, ...]


def model_config(
    name: str,
    inputs: Sequence[TensorSpec],
    outputs: Sequence[TensorSpec],
    *,
    max_batch_size: int,
    max_queue_delay_us: int,
    kind: Kind = "KIND_AUTO",
) -> dict[str, Any]:
    """The ModelConfig of a dynamically batched onnxruntime model, as Triton answers it."""
    return {
        "name": name,
        "platform": PLATFORM,
        "backend": BACKEND,
        "version_policy": {"latest": {"num_versions": 1}},
        "max_batch_size": max_batch_size,
        "input": [_input(spec) for spec in inputs],
        "output": [_output(spec) for spec in outputs],
        "dynamic_batching": {
            "preferred_batch_size": [],
            "max_queue_delay_microseconds": max_queue_delay_us,
            "preserve_ordering": False,
            "priority_levels": 0,
            "default_priority_level": 0,
            "priority_queue_policy": {},
        },
        "instance_group": [
            {
                "name": f"{name}_0",  # Triton's name for an unnamed group
                "kind": kind,
                "count": 1,
                "gpus": [],
                "profile": [],
                "passive": False,
                "host_policy": "",
            }
        ],
        "default_model_filename": MODEL_FILE,
        "parameters": {},
        "model_warmup": [],
    }


def _input(spec: TensorSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "data_type": CONFIG_TYPES[spec.datatype],
        "format": "FORMAT_NONE",
        "dims": list(spec.dims),
        "is_shape_tensor": False,
        "allow_ragged_batch": False,
        "optional": False,
    }


def _output(spec: TensorSpec) -> dict[str, Any]:
    return {
        "name": spec.name,
        "data_type": CONFIG_TYPES[spec.datatype],
        "dims": list(spec.dims),
        "label_filename": LABELS_FILE if spec.name == LOGITS_NAME else "",
        "is_shape_tensor": False,
    }
