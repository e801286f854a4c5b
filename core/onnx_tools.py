"""Building ONNX models: the opset and IR version every graph of this project uses.

The exported AlexNet, the numerics' one-node graphs and the logits-only view of a
model are all made here, with the onnx API, so they agree on versions and checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import onnx
from onnx import helper

OPSET = 17
# IR 8 is readable by every onnxruntime release since 1.14.
IR_VERSION = 8
PRODUCER = "alexnet-serving"


def make_model(
    nodes: Sequence[onnx.NodeProto],
    inputs: Sequence[onnx.ValueInfoProto],
    outputs: Sequence[onnx.ValueInfoProto],
    name: str,
    initializers: Sequence[onnx.TensorProto] = (),
    *,
    full_check: bool = False,
) -> onnx.ModelProto:
    """A checked model of one graph at this project's opset and IR version."""
    graph = helper.make_graph(list(nodes), name, list(inputs), list(outputs), list(initializers))
    model = helper.make_model(
        graph, producer_name=PRODUCER, opset_imports=[helper.make_opsetid("", OPSET)]
    )
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=full_check)
    return model


def with_outputs_only(source: Path, keep: Sequence[str]) -> bytes:
    """The serialised model at `source` with only the graph outputs named in `keep`.

    onnxruntime runs every node of a graph whichever outputs are asked for, so a
    view of the model with fewer outputs skips the work of the others (for AlexNet
    with every layer as an output: converting each layer out of the CPU's blocked
    layout, or dequantising it in an int8 model).
    """
    model = onnx.load(str(source))
    missing = [name for name in keep if name not in {o.name for o in model.graph.output}]
    if missing:
        raise ValueError(f"{source.name} has no output {', '.join(missing)}")
    kept = [output for output in model.graph.output if output.name in keep]
    del model.graph.output[:]
    model.graph.output.extend(kept)
    return model.SerializeToString()
