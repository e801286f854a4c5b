"""The backward pass of each AlexNet layer kind, written out as ONNX nodes.

onnxruntime has no autodiff for inference graphs, so `model.onnx_backward` chains
these by hand. Each builder takes the gradient with respect to a layer's output and
returns nodes computing the gradient with respect to its input (vector-Jacobian
products), reading the forward tensors the forward nodes already compute and the
weights the forward graph already stores (no weight is ever stored twice). Torch-free:
onnx and numpy only.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper

from model.architecture import LayerSpec

# Shared constants, added to the graph once by `backward_constants`.
ZERO = "backward.zero"
FLAT = "backward.flat_shape"


def backward_constants() -> list[onnx.TensorProto]:
    """The scalar 0 and the shape [-1] several backward builders read."""
    return [
        numpy_helper.from_array(np.array(0.0, np.float32), ZERO),
        numpy_helper.from_array(np.array([-1], np.int64), FLAT),
    ]


def relu_backward(layer: str, grad: str, output: str) -> tuple[list[onnx.NodeProto], str]:
    """dx = dy where y > 0, else 0: at exactly 0 the gradient is 0, as torch's."""
    positive, out = f"{layer}_grad_relu_mask", f"{layer}_grad_pre_relu"
    return [
        helper.make_node("Greater", [output, ZERO], [positive], name=positive),
        helper.make_node("Where", [positive, grad, ZERO], [out], name=out),
    ], out


def conv_backward(
    spec: LayerSpec, grad: str, weight: str, in_size: int, out_size: int
) -> tuple[list[onnx.NodeProto], str]:
    """dx = ConvTranspose(dy, W) with the conv's own weight, groups, stride and padding.

    ConvTranspose reads its weight as (C_in of dy, C_out / group, k, k), which is
    exactly the conv's (out, in / group, k, k) layout, so the stored weight serves
    both. With stride > 1 several input sizes give the same output size; the
    output padding picks the forward input's.
    """
    covered = (out_size - 1) * spec.stride + spec.kernel - 2 * spec.padding
    extra = in_size - covered
    if not 0 <= extra < spec.stride:
        raise ValueError(f"{spec.name}: no transposed convolution maps {out_size} to {in_size}")
    out = f"{spec.name}_grad_input"
    node = helper.make_node(
        "ConvTranspose",
        [grad, weight],
        [out],
        name=out,
        kernel_shape=[spec.kernel] * 2,
        strides=[spec.stride] * 2,
        pads=[spec.padding] * 4,
        output_padding=[extra] * 2,
        group=spec.groups,
    )
    return [node], out


def fc_backward(
    spec: LayerSpec, grad: str, weight: str, source: str, source_is_map: bool
) -> tuple[list[onnx.NodeProto], str]:
    """y = x W^T + b gives dx = dy W; the first fc also undoes its Flatten."""
    flat = f"{spec.name}_grad_input_flat" if source_is_map else f"{spec.name}_grad_input"
    nodes = [helper.make_node("MatMul", [grad, weight], [flat], name=flat)]
    if not source_is_map:
        return nodes, flat
    shape, out = f"{spec.name}_grad_source_shape", f"{spec.name}_grad_input"
    nodes += [
        helper.make_node("Shape", [source], [shape], name=shape),
        helper.make_node("Reshape", [flat, shape], [out], name=out),
    ]
    return nodes, out


def maxpool_backward(spec: LayerSpec, grad: str, source: str) -> tuple[list[onnx.NodeProto], str]:
    """Each output's gradient goes to the input element its window took the max from.

    MaxPool's Indices index the whole (N, C, H, W) input flattened, so one
    ScatterElements over the flattened input routes every gradient; with
    reduction="add", an element that is the max of several overlapping windows
    (3x3, stride 2) receives the sum, as in torch. The forward MaxPool node is left
    as the forward model has it; a second one on the same input yields the indices.
    Both onnxruntime and torch take the first maximum of a window in row-major
    order on exact ties (an all-zero window after a ReLU, say), so they route
    alike; near-ties that round-off orders differently are `model.gradient_parity`'s
    business.
    """
    name = spec.name
    t = {
        key: f"{name}_grad_{key}"
        for key in (
            "pooled",
            "indices",
            "flat_indices",
            "flat_grad",
            "shape",
            "zeros",
            "flat_zeros",
            "flat_input",
            "input",
        )
    }
    nodes = [
        helper.make_node(
            "MaxPool",
            [source],
            [t["pooled"], t["indices"]],
            name=t["indices"],
            kernel_shape=[spec.kernel] * 2,
            strides=[spec.stride] * 2,
            pads=[spec.padding] * 4,
        ),
        helper.make_node("Reshape", [t["indices"], FLAT], [t["flat_indices"]]),
        helper.make_node("Reshape", [grad, FLAT], [t["flat_grad"]]),
        helper.make_node("Shape", [source], [t["shape"]]),
        helper.make_node("ConstantOfShape", [t["shape"]], [t["zeros"]]),  # float32 zeros
        helper.make_node("Reshape", [t["zeros"], FLAT], [t["flat_zeros"]]),
        helper.make_node(
            "ScatterElements",
            [t["flat_zeros"], t["flat_indices"], t["flat_grad"]],
            [t["flat_input"]],
            name=t["flat_input"],
            axis=0,
            reduction="add",
        ),
        helper.make_node("Reshape", [t["flat_input"], t["shape"]], [t["input"]]),
    ]
    for node in nodes:
        node.name = node.name or node.output[0]
    return nodes, t["input"]


def lrn_backward(
    spec: LayerSpec, grad: str, source: str, base: str, denominator: str, window: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], str]:
    """The exact gradient of b_i = a_i / d_i^beta, d_i = k + alpha * sum_{j in win(i)} a_j^2.

        da_j = db_j d_j^-beta - 2 alpha beta a_j sum_{i: j in win(i)} db_i a_i d_i^(-beta-1)

    `base` is the forward graph's d and `denominator` its d^beta. The clipped odd
    window is symmetric (j in win(i) iff i in win(j)), so the inner sum is the
    forward's own window-sum convolution applied to db a d^(-beta-1).
    """
    name = spec.name
    t = {key: f"{name}_grad_{key}" for key in ("direct", "weighted", "scaled", "summed", "cross")}
    coefficient = numpy_helper.from_array(
        np.array(2.0 * spec.lrn_alpha * spec.lrn_beta, np.float32), f"{name}.grad_coefficient"
    )
    out = f"{name}_grad_input"
    nodes = [
        helper.make_node("Div", [grad, denominator], [t["direct"]]),  # db d^-beta
        helper.make_node("Mul", [t["direct"], source], [t["weighted"]]),
        helper.make_node("Div", [t["weighted"], base], [t["scaled"]]),  # db a d^(-beta-1)
        helper.make_node("Conv", [t["scaled"], window], [t["summed"]]),
        helper.make_node("Mul", [t["summed"], source], [f"{t['cross']}_unscaled"]),
        helper.make_node("Mul", [f"{t['cross']}_unscaled", coefficient.name], [t["cross"]]),
        helper.make_node("Sub", [t["direct"], t["cross"]], [out]),
    ]
    for node in nodes:
        node.name = node.output[0]
    return nodes, [coefficient], out
