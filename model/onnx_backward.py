"""ONNX graphs that return a layer's activation and its exact gradient, for Grad-CAM.

onnxruntime cannot differentiate, and the service must not carry torch, so the
backward pass is written into the graph: the forward nodes are the forward model's
own (`model.onnx_graph.layer_nodes`), followed by the vector-Jacobian product of
every layer from the logits down to the lowest explained layer
(`model.onnx_backward_ops`). The graph takes the image and `class_weights` (N,
classes) and returns d(sum_c class_weights[n, c] * logits[n, c]) / d activation, so a
one-hot row gives d logit_c / d activation. Torch-free: onnx and numpy only.

Two shapes of graph:
- `build_explain_model`: every explainable layer's activation (named as the layer)
  and gradient (`<layer>_gradient`) in one graph; a session serves any target layer.
- `build_gradient_model`: one target layer, as outputs `activation` and `gradient`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, helper

from core.manifest import INPUT_NAME, LOGITS_NAME, Layer, gradient_output
from core.onnx_tools import IR_VERSION, OPSET
from model.architecture import Architecture, LayerSpec, layer_table
from model.onnx_backward_ops import (
    backward_constants,
    conv_backward,
    fc_backward,
    lrn_backward,
    maxpool_backward,
    relu_backward,
)
from model.onnx_graph import forward_layers
from model.onnx_lrn import window_sum_node

EXPLAINABLE_KINDS = ("conv", "maxpool", "lrn")
DEFAULT_TARGET = "conv5"
CLASS_WEIGHTS_NAME = "class_weights"
ACTIVATION_NAME = "activation"
GRADIENT_NAME = "gradient"
# Model metadata saying which layers a graph explains (read by the parity check).
TARGET_LAYER_KEY = "explain.target_layer"
EXPLAINED_LAYERS_KEY = "explain.layers"


def explainable_layers(arch: Architecture) -> list[str]:
    """The layers a gradient can be asked for: every conv, max-pool and LRN layer."""
    return [spec.name for spec in arch.layers if spec.kind in EXPLAINABLE_KINDS]


def build_explain_model(
    arch: Architecture,
    weights: dict[str, np.ndarray],
    layers: Sequence[str] | None = None,
    *,
    producer: str = "alexnet-serving",
) -> onnx.ModelProto:
    """Outputs `logits`, then `<layer>` and `<layer>_gradient` for each layer (default all)."""
    layers = list(explainable_layers(arch) if layers is None else layers)
    graph = _Graph.forward(arch, weights)
    gradients = graph.backward(arch, layers)
    rows = {row.name: row for row in layer_table(arch)}
    outputs: list[tuple[str, str, Layer]] = []
    for layer in explainable_layers(arch):  # forward order, whatever order was asked
        if layer in gradients:
            outputs.append((layer, layer, rows[layer]))
            outputs.append((gradients[layer], gradient_output(layer), rows[layer]))
    return graph.model(arch, outputs, {EXPLAINED_LAYERS_KEY: ",".join(gradients)}, producer)


def build_gradient_model(
    arch: Architecture,
    weights: dict[str, np.ndarray],
    target_layer: str = DEFAULT_TARGET,
    *,
    producer: str = "alexnet-serving",
) -> onnx.ModelProto:
    """Outputs `logits`, `activation` (the target layer's output) and `gradient`."""
    graph = _Graph.forward(arch, weights)
    gradient = graph.backward(arch, [target_layer])[target_layer]
    row = next(row for row in layer_table(arch) if row.name == target_layer)
    outputs = [(target_layer, ACTIVATION_NAME, row), (gradient, GRADIENT_NAME, row)]
    return graph.model(arch, outputs, {TARGET_LAYER_KEY: target_layer}, producer)


@dataclass
class _Graph:
    """The forward model's nodes, plus what the backward nodes need to know about them."""

    nodes: list[onnx.NodeProto] = field(default_factory=list)
    initializers: list[onnx.TensorProto] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)  # layer -> its input tensor
    raw: dict[str, str] = field(default_factory=dict)  # layer -> its output before ReLU

    @classmethod
    def forward(cls, arch: Architecture, weights: dict[str, np.ndarray]) -> _Graph:
        """The same nodes, in the same order, as `build_onnx_model`."""
        graph = cls()
        for layer in forward_layers(arch, weights, graph.initializers):
            graph.nodes += layer.nodes
            graph.sources[layer.spec.name] = layer.source
            graph.raw[layer.spec.name] = (
                layer.nodes[-1].input[0] if layer.spec.relu else layer.output
            )
        output = graph.nodes[-1].output[0]
        graph.nodes.append(helper.make_node("Identity", [output], [LOGITS_NAME], name=LOGITS_NAME))
        return graph

    def backward(self, arch: Architecture, targets: Sequence[str]) -> dict[str, str]:
        """Add the backward nodes from the logits down to the lowest target.

        Returns, per target layer in forward order, the tensor holding the gradient
        with respect to its output (after its ReLU: the activation Grad-CAM weighs).
        """
        names, explainable = arch.layer_names, explainable_layers(arch)
        unknown = [target for target in targets if target not in explainable]
        if unknown or not targets:
            raise ValueError(
                f"cannot explain layer {', '.join(map(repr, unknown)) or 'none'}; "
                f"choose among {', '.join(explainable)}"
            )
        lowest = min(names.index(target) for target in targets)
        rows = layer_table(arch)
        self.initializers += backward_constants()
        grad = CLASS_WEIGHTS_NAME  # d score / d logits, the last layer's output
        gradients: dict[str, str] = {}
        for index in range(len(names) - 1, lowest - 1, -1):
            if names[index] in targets:
                gradients[names[index]] = grad
            if index > lowest:  # no layer below the lowest target needs a gradient
                grad = self._layer_backward(arch.layers[index], grad, rows[index - 1], rows[index])
        return {name: gradients[name] for name in names if name in gradients}

    def _layer_backward(self, spec: LayerSpec, grad: str, below: Layer, row: Layer) -> str:
        """Add nodes taking d/d(spec's output) to d/d(its input); return the latter's name."""
        source = self.sources[spec.name]
        if spec.relu:
            nodes, grad = relu_backward(spec.name, grad, spec.name)
            self.nodes += nodes
        weight = f"{spec.name}.weight"
        if spec.kind == "conv":
            nodes, grad = conv_backward(
                spec, grad, weight, below.output_shape[-1], row.output_shape[-1]
            )
        elif spec.kind == "fc":
            is_map = len(below.output_shape) > 1
            nodes, grad = fc_backward(spec, grad, weight, source, source_is_map=is_map)
        elif spec.kind == "maxpool":
            nodes, grad = maxpool_backward(spec, grad, source)
        else:
            base, denominator, window = self._lrn_tensors(spec.name)
            nodes, constants, grad = lrn_backward(spec, grad, source, base, denominator, window)
            self.initializers += constants
        self.nodes += nodes
        return grad

    def _lrn_tensors(self, layer: str) -> tuple[str, str, str]:
        """The forward LRN's d = k + alpha * window sum, its d^beta and its window matrix."""
        window_node = next(n for n in self.nodes if n.name == window_sum_node(layer))
        divide = next(n for n in self.nodes if self.raw[layer] in n.output)
        if divide.op_type != "Div" or divide.input[0] != self.sources[layer]:
            raise ValueError(f"{layer}: the forward LRN no longer ends in a / d^beta")
        return window_node.output[0], divide.input[1], window_node.input[1]

    def model(
        self,
        arch: Architecture,
        outputs: list[tuple[str, str, Layer]],
        metadata: dict[str, str],
        producer: str,
    ) -> onnx.ModelProto:
        """The checked ModelProto: inputs image and class weights, `logits` first."""
        nodes = list(self.nodes)
        for tensor, name, _ in outputs:
            if tensor != name:
                nodes.append(helper.make_node("Identity", [tensor], [name], name=name))
        size, classes = arch.input_size, arch.layers[-1].out
        inputs = [
            helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", 3, size, size]),
            helper.make_tensor_value_info(CLASS_WEIGHTS_NAME, TensorProto.FLOAT, ["N", classes]),
        ]
        graph_outputs = [
            helper.make_tensor_value_info(LOGITS_NAME, TensorProto.FLOAT, ["N", classes])
        ]
        graph_outputs += [
            helper.make_tensor_value_info(name, TensorProto.FLOAT, ["N", *row.output_shape])
            for _, name, row in outputs
        ]
        graph = helper.make_graph(
            nodes, f"alexnet_{arch.variant}_explain", inputs, graph_outputs, self.initializers
        )
        model = helper.make_model(
            graph, producer_name=producer, opset_imports=[helper.make_opsetid("", OPSET)]
        )
        model.ir_version = IR_VERSION
        helper.set_model_props(model, metadata)
        onnx.checker.check_model(model, full_check=True)
        return model
