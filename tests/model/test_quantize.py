"""int8 export: the recipe follows the CPU class, and the MatMul window sums change nothing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from core.preprocess import preprocess_bytes
from core.runtime import session_options
from model.onnx_lrn import is_window_sum_node
from model.quantize import quantize_int8, window_sums_as_matmul
from service.artifacts import load_artifacts


@pytest.fixture(scope="module")
def photo_batch(exported_artifacts: Path, photos: dict[str, bytes]) -> np.ndarray:
    spec = load_artifacts(exported_artifacts).preprocess
    return np.stack([preprocess_bytes(blob, spec) for blob in photos.values()])


def _int8_weights(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {
        t.name: numpy_helper.to_array(t)
        for t in model.graph.initializer
        if t.data_type == onnx.TensorProto.INT8 and len(t.dims) > 1
    }


def _logits(model: Path | bytes, batch: np.ndarray) -> np.ndarray:
    source = str(model) if isinstance(model, Path) else model
    session = ort.InferenceSession(source, session_options(1), providers=["CPUExecutionProvider"])
    return session.run(["logits"], {"input": batch})[0]


def _optimised_op_counts(model: Path, folder: Path) -> dict[str, int]:
    options = session_options(1)
    options.optimized_model_filepath = str(folder / f"{model.stem}.optimised.onnx")
    ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
    counts: dict[str, int] = {}
    for node in onnx.load(options.optimized_model_filepath).graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return counts


@pytest.mark.slow
def test_weight_bits_follow_the_cpu_class_and_window_sums_as_matmul_are_exact(
    exported_artifacts: Path, photo_batch: np.ndarray, tmp_path: Path
) -> None:
    fp32 = exported_artifacts / "alexnet.onnx"
    calibration = [photo_batch]

    # A CPU without VNNI: 7-bit weights, which u8 x s8 pair sums cannot saturate.
    conv = tmp_path / "avx2-conv.onnx"
    record = quantize_int8(fp32, conv, calibration, isa="avx2", window_sum="conv")
    assert (record.weights.bits, record.target_isa, record.lrn_window_sum) == (7, "avx2", "conv")
    assert record.activations.images == len(photo_batch)
    weights = _int8_weights(onnx.load(str(conv)))
    layers = ["conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7"]
    assert sorted(weights) == [f"{layer}.weight_quantized" for layer in layers]
    assert max(int(np.abs(w).max()) for w in weights.values()) <= 64

    # The window sums rewritten: the same numbers, bit for bit, from a graph with no layout
    # changes around them.
    rewritten = window_sums_as_matmul(onnx.load(str(conv)))
    sums = [n for n in rewritten.graph.node if is_window_sum_node(n.name)]
    assert [n.op_type for n in sums] == ["MatMul", "MatMul"]
    assert not any(n.op_type == "Conv" and is_window_sum_node(n.name) for n in rewritten.graph.node)
    matmul = tmp_path / "avx2-matmul.onnx"
    onnx.save(rewritten, str(matmul))
    np.testing.assert_array_equal(_logits(matmul, photo_batch), _logits(conv, photo_batch))
    with_conv, with_matmul = (_optimised_op_counts(m, tmp_path) for m in (conv, matmul))
    assert with_matmul.get("Transpose", 0) < with_conv.get("Transpose", 0), (with_conv, with_matmul)

    # A VNNI CPU: 8-bit weights (the largest of each channel at 127), window sums as MatMul.
    vnni = tmp_path / "vnni.onnx"
    record = quantize_int8(fp32, vnni, calibration, isa="avx512_vnni")
    assert (record.weights.bits, record.lrn_window_sum) == (8, "matmul")
    assert max(int(np.abs(w).max()) for w in _int8_weights(onnx.load(str(vnni))).values()) == 127
    assert [n.op_type for n in onnx.load(str(vnni)).graph.node if n.name == "norm1_window_sum"] == [
        "MatMul"
    ]
