"""One ONNX file reading its weights from inside another: offsets, bytes, same outputs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from model.architecture import Architecture, LayerSpec
from model.network import AlexNet
from model.onnx_backward import build_explain_model
from model.onnx_graph import build_onnx_model
from model.onnx_shared_weights import MIN_SHARED_BYTES, initializer_offsets, refer_to_weights_in

SMALL = Architecture(
    "small",
    19,
    (
        LayerSpec("conv1", "conv", out=16, kernel=3, stride=2, relu=True),
        LayerSpec("pool1", "maxpool", kernel=3, stride=2),
        LayerSpec("norm1", "lrn", lrn_size=5, lrn_alpha=1e-4, lrn_beta=0.75, lrn_k=2.0),
        LayerSpec("conv2", "conv", out=32, kernel=3, padding=1, groups=2, relu=True),
        LayerSpec("fc8", "fc", out=10),
    ),
)


def _weights(seed: int) -> dict[str, np.ndarray]:
    torch.manual_seed(seed)
    return {k: v.detach().numpy() for k, v in AlexNet(SMALL).state_dict().items()}


def _run(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_offsets_point_at_each_initializers_bytes(tmp_path: Path) -> None:
    model = build_onnx_model(SMALL, _weights(0))
    path = tmp_path / "forward.onnx"
    onnx.save_model(model, path)
    data = path.read_bytes()
    offsets = initializer_offsets(path)
    assert set(offsets) == {init.name for init in model.graph.initializer}
    for init in model.graph.initializer:
        offset, length = offsets[init.name]
        assert data[offset : offset + length] == init.raw_data, init.name


def test_explain_graph_reading_the_forward_files_weights(tmp_path: Path) -> None:
    weights = _weights(0)
    forward_path = tmp_path / "alexnet.onnx"
    onnx.save_model(build_onnx_model(SMALL, weights), forward_path)
    forward_bytes = forward_path.read_bytes()
    explain = build_explain_model(SMALL, weights)
    onnx.save_model(explain, tmp_path / "inline.onnx")
    shared = refer_to_weights_in(explain, forward_path)
    onnx.save_model(shared, tmp_path / "shared.onnx")
    onnx.checker.check_model(str(tmp_path / "shared.onnx"), full_check=True)

    referenced = [
        i for i in shared.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL
    ]
    big = [i.name for i in explain.graph.initializer if len(i.raw_data) >= MIN_SHARED_BYTES]
    assert sorted(i.name for i in referenced) == sorted(big) and "conv2.weight" in big
    assert (tmp_path / "shared.onnx").stat().st_size < 20_000
    assert forward_path.read_bytes() == forward_bytes  # the forward file is left as it was

    rng = np.random.default_rng(0)
    feeds = {
        "input": rng.normal(size=(2, 3, 19, 19)).astype(np.float32),
        "class_weights": rng.normal(size=(2, 10)).astype(np.float32),
    }
    for got, expected in zip(
        _run(tmp_path / "shared.onnx", feeds), _run(tmp_path / "inline.onnx", feeds), strict=True
    ):
        np.testing.assert_array_equal(got, expected)


def test_weights_that_differ_are_not_referenced(tmp_path: Path) -> None:
    forward_path = tmp_path / "alexnet.onnx"
    onnx.save_model(build_onnx_model(SMALL, _weights(0)), forward_path)
    with pytest.raises(ValueError, match="differs from the tensor of that name"):
        refer_to_weights_in(build_explain_model(SMALL, _weights(1)), forward_path)
