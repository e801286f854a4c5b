"""Writing the Grad-CAM graph at export time: the manifest entry, the check, the refusal."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from core.errors import UserFacingError
from core.manifest import gradient_output, sha256_file
from core.preprocess import PreprocessSpec, preprocess_bytes
from model.checkpoint import load_model
from model.explain_export import EXPLAIN_FILE, classes_to_check, write_explain_model
from model.network import AlexNet
from model.onnx_backward import build_explain_model
from model.onnx_graph import build_onnx_model
from tests.support import DESIGN_LAYERS

PAPER_EXPLAINABLE = [name for name in DESIGN_LAYERS if not name.startswith("fc")]


@pytest.fixture(scope="module")
def seeded(checkpoint_path: Path, photos: dict[str, bytes]) -> tuple[AlexNet, np.ndarray]:
    model, _ = load_model(checkpoint_path)
    spec = PreprocessSpec.for_input(model.arch.input_size)
    return model, np.stack([preprocess_bytes(photo, spec) for photo in photos.values()])


def test_entry_describes_a_verified_file(
    seeded: tuple[AlexNet, np.ndarray], tmp_path: Path
) -> None:
    model, batch = seeded
    entry = write_explain_model(model, batch, tmp_path)
    path = tmp_path / entry.path
    assert entry.path == EXPLAIN_FILE and sorted(p.name for p in tmp_path.iterdir()) == [
        EXPLAIN_FILE
    ]
    assert entry.sha256 == sha256_file(path) and entry.bytes == path.stat().st_size
    assert entry.layers == PAPER_EXPLAINABLE
    assert list(entry.gradient_vs_pytorch) == PAPER_EXPLAINABLE
    for layer, parity in entry.gradient_vs_pytorch.items():
        assert parity.gradient_max_rel_diff <= 1e-4, layer
        assert parity.gradient_max_abs > 0, layer
    # The names the manifest promises are the graph's.
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input", entry.class_weights_input]
    names = {o.name for o in session.get_outputs()}
    assert "logits" in names
    assert all({layer, gradient_output(layer)} <= names for layer in entry.layers)


def test_weights_read_from_the_forward_file(
    seeded: tuple[AlexNet, np.ndarray], tmp_path: Path
) -> None:
    model, batch = seeded
    weights = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    forward = tmp_path / "alexnet.onnx"
    onnx.save_model(build_onnx_model(model.arch, weights), forward)
    entry = write_explain_model(model, batch, tmp_path, weights_from=forward)
    assert entry.weights_from == "alexnet.onnx"
    assert entry.bytes < 100_000 < forward.stat().st_size  # no second copy of the weights
    assert max(p.gradient_max_rel_diff for p in entry.gradient_vs_pytorch.values()) <= 1e-4
    feeds = {"input": batch, "class_weights": np.eye(10, dtype=np.float32)[: len(batch)]}
    shared_out = ort.InferenceSession(
        str(tmp_path / EXPLAIN_FILE), providers=["CPUExecutionProvider"]
    ).run(None, feeds)
    inline_graph = build_explain_model(model.arch, weights).SerializeToString()
    inline_out = ort.InferenceSession(inline_graph, providers=["CPUExecutionProvider"]).run(
        None, feeds
    )
    for got, expected in zip(shared_out, inline_out, strict=True):
        np.testing.assert_array_equal(got, expected)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(ValueError, match="must be in"):
        write_explain_model(model, batch, elsewhere, weights_from=forward)


def test_a_graph_that_does_not_match_is_not_written(
    seeded: tuple[AlexNet, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model.explain_export as explain_export

    real_build = explain_export.build_explain_model

    def broken_build(arch, weights):  # type: ignore[no-untyped-def]
        weights = dict(weights)
        weights["layers.fc7.weight"] = weights["layers.fc7.weight"] * 1.01
        return real_build(arch, weights)

    monkeypatch.setattr(explain_export, "build_explain_model", broken_build)
    model, batch = seeded
    with pytest.raises(UserFacingError, match="gradient differs"):
        write_explain_model(model, batch, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_checked_classes_alternate_top1_and_runner_up(seeded: tuple[AlexNet, np.ndarray]) -> None:
    model, batch = seeded
    with torch.no_grad():
        ranking = model(torch.from_numpy(batch)).argsort(dim=1, descending=True)
    expected = [int(ranking[i, i % 2]) for i in range(len(batch))]
    assert classes_to_check(model, batch) == expected
