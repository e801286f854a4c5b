"""Build the ONNX graph of an AlexNet straight from its layer specs and weights.

Emitting the graph from the specs (instead of tracing PyTorch) keeps every layer
a few ONNX nodes with its own name as an output (LRN as six, see `model.onnx_lrn`,
where the tracing exporter emits some forty); and the graph does not depend on
which exporter a torch release ships. Export checks it against PyTorch.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from core.manifest import INPUT_NAME, LOGITS_NAME
from core.onnx_tools import make_model
from model.architecture import Architecture, LayerSpec, layer_table
from model.onnx_lrn import lrn_nodes


def layer_nodes(
    spec: LayerSpec,
    source: str,
    weights: dict[str, np.ndarray],
    initializers: list[onnx.TensorProto],
    channels: int,
) -> tuple[list[onnx.NodeProto], str]:
    """The nodes of one layer, reading `source`, and the name of its output."""
    name = spec.name
    raw = f"{name}_pre_relu" if spec.relu else name
    nodes: list[onnx.NodeProto] = []
    if spec.kind in ("conv", "fc"):
        weight, bias = weights[f"layers.{name}.weight"], weights[f"layers.{name}.bias"]
        initializers += [
            numpy_helper.from_array(weight, f"{name}.weight"),
            numpy_helper.from_array(bias, f"{name}.bias"),
        ]
    if spec.kind == "conv":
        nodes.append(
            helper.make_node(
                "Conv",
                [source, f"{name}.weight", f"{name}.bias"],
                [raw],
                name=name,
                kernel_shape=[spec.kernel] * 2,
                strides=[spec.stride] * 2,
                pads=[spec.padding] * 4,
                group=spec.groups,
            )
        )
    elif spec.kind == "maxpool":
        nodes.append(
            helper.make_node(
                "MaxPool",
                [source],
                [raw],
                name=name,
                kernel_shape=[spec.kernel] * 2,
                strides=[spec.stride] * 2,
                pads=[spec.padding] * 4,
            )
        )
    elif spec.kind == "lrn":
        lrn, constants = lrn_nodes(spec, source, raw, channels)
        nodes += lrn
        initializers += constants
    else:  # fc: flatten (a no-op after the first fc) then y = x W^T + b
        flat = f"{name}_flat"
        nodes.append(helper.make_node("Flatten", [source], [flat], name=f"{name}_flatten", axis=1))
        nodes.append(
            helper.make_node(
                "Gemm", [flat, f"{name}.weight", f"{name}.bias"], [raw], name=name, transB=1
            )
        )
    if spec.relu:
        nodes.append(helper.make_node("Relu", [raw], [name], name=f"{name}_relu"))
    return nodes, name


@dataclass(frozen=True)
class ForwardLayer:
    """One layer of the forward graph: the tensor it reads, its nodes, the tensor it writes."""

    spec: LayerSpec
    source: str
    nodes: list[onnx.NodeProto]
    output: str


def forward_layers(
    arch: Architecture, weights: dict[str, np.ndarray], initializers: list[onnx.TensorProto]
) -> list[ForwardLayer]:
    """Every layer's nodes, in order, from `input`; their constants go into `initializers`.

    The forward model and the explain graph (`model.onnx_backward`) are both made of these.
    """
    layers, source = [], INPUT_NAME
    for spec, row in zip(arch.layers, layer_table(arch), strict=True):
        nodes, output = layer_nodes(spec, source, weights, initializers, row.output_shape[0])
        layers.append(ForwardLayer(spec, source, nodes, output))
        source = output
    return layers


def build_onnx_model(arch: Architecture, weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    """An fp32 model: input `input` (N,3,S,S); outputs `logits`, then every layer by name."""
    rows = layer_table(arch)
    initializers: list[onnx.TensorProto] = []
    layers = forward_layers(arch, weights, initializers)
    nodes = [node for layer in layers for node in layer.nodes]
    # The logits are the last layer's output under their own name as well.
    nodes.append(helper.make_node("Identity", [layers[-1].output], [LOGITS_NAME], name=LOGITS_NAME))
    size = arch.input_size
    inputs = [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, size, size])]
    outputs = [
        helper.make_tensor_value_info(LOGITS_NAME, TensorProto.FLOAT, ["N", arch.layers[-1].out])
    ]
    outputs += [
        helper.make_tensor_value_info(row.name, TensorProto.FLOAT, ["N", *row.output_shape])
        for row in rows
    ]
    return make_model(
        nodes, inputs, outputs, f"alexnet_{arch.variant}", initializers, full_check=True
    )


def to_fp16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Weights and compute in fp16, inputs and outputs still fp32 so clients see no change."""
    fp16 = onnx.ModelProto()
    fp16.CopyFrom(model)
    graph = fp16.graph
    for init in graph.initializer:
        array = numpy_helper.to_array(init).astype(np.float16)
        init.CopyFrom(numpy_helper.from_array(array, init.name))
    cast_in = helper.make_node(
        "Cast", [INPUT_NAME], [f"{INPUT_NAME}_fp16"], name="input_to_fp16", to=TensorProto.FLOAT16
    )
    for node in graph.node:
        node.input[:] = [f"{INPUT_NAME}_fp16" if n == INPUT_NAME else n for n in node.input]
    casts_out = []
    for output in graph.output:
        internal = f"{output.name}_fp16"
        for node in graph.node:
            node.output[:] = [internal if n == output.name else n for n in node.output]
            node.input[:] = [internal if n == output.name else n for n in node.input]
        casts_out.append(
            helper.make_node(
                "Cast",
                [internal],
                [output.name],
                name=f"{output.name}_to_fp32",
                to=TensorProto.FLOAT,
            )
        )
    nodes = [cast_in, *graph.node, *casts_out]
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.checker.check_model(fp16)
    return fp16
