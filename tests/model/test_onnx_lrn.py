"""The LRN nodes of the exported graph against ONNX's own LRN op and the paper's formula."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

from model.architecture import LayerSpec, paper_alexnet
from model.onnx_lrn import lrn_nodes, window_sum_matrix

PAPER_LRN = next(layer for layer in paper_alexnet(10).layers if layer.kind == "lrn")


def _session(nodes: list, initializers: list, channels: int) -> ort.InferenceSession:
    shape = ["N", channels, "H", "W"]
    graph = helper.make_graph(
        nodes,
        "lrn",
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("b", TensorProto.FLOAT, shape)],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    return ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])


def _decomposed(spec: LayerSpec, a: np.ndarray) -> np.ndarray:
    nodes, constants = lrn_nodes(spec, "a", "b", a.shape[1])
    return _session(nodes, constants, a.shape[1]).run(["b"], {"a": a})[0]


def _onnx_lrn_op(spec: LayerSpec, a: np.ndarray) -> np.ndarray:
    node = helper.make_node(
        "LRN",
        ["a"],
        ["b"],
        size=spec.lrn_size,
        alpha=spec.lrn_alpha_per_size,
        beta=spec.lrn_beta,
        bias=spec.lrn_k,
    )
    return _session([node], [], a.shape[1]).run(["b"], {"a": a})[0]


def _paper_formula(spec: LayerSpec, a: np.ndarray) -> np.ndarray:
    """b[c] = a[c] / (k + alpha * sum_{j=max(0,c-n/2)}^{min(N-1,c+n/2)} a[j]^2)^beta (odd n)."""
    channels = a.shape[1]
    out = np.empty_like(a, dtype=np.float64)
    for c in range(channels):
        half = spec.lrn_size // 2
        low, high = max(0, c - half), min(channels - 1, c + half)
        sums = (a[:, low : high + 1].astype(np.float64) ** 2).sum(1)
        out[:, c] = a[:, c] / (spec.lrn_k + spec.lrn_alpha * sums) ** spec.lrn_beta
    return out


@pytest.mark.parametrize(
    "spec",
    [
        PAPER_LRN,  # n=5, beta=0.75: the Sqrt path
        dataclasses.replace(PAPER_LRN, lrn_size=3, lrn_beta=0.6, lrn_alpha=1e-3, lrn_k=1.0),
    ],
    ids=["paper", "other-constants-pow"],
)
def test_lrn_nodes_equal_the_onnx_lrn_op_and_the_paper(spec: LayerSpec) -> None:
    rng = np.random.default_rng(0)
    # Post-ReLU activations of a trained conv1 reach the hundreds.
    a = (rng.random((2, 12, 5, 7)) * 300).astype(np.float32)
    got = _decomposed(spec, a)
    np.testing.assert_allclose(got, _onnx_lrn_op(spec, a), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got, _paper_formula(spec, a), rtol=1e-5, atol=1e-6)
    assert not np.allclose(got, a / spec.lrn_k**spec.lrn_beta, rtol=1e-3)  # it normalised


def test_window_sum_matrix_clips_at_the_edges() -> None:
    band = window_sum_matrix(6, 5)[:, :, 0, 0]
    assert band.tolist()[0] == [1, 1, 1, 0, 0, 0]
    assert band.tolist()[3] == [0, 1, 1, 1, 1, 1]
    assert band.tolist()[5] == [0, 0, 0, 1, 1, 1]
    with pytest.raises(ValueError, match="odd"):  # ONNX and PyTorch disagree on even windows
        window_sum_matrix(6, 4)
