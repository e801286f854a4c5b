"""`alexnet export`: ONNX/PyTorch parity per layer, the manifest, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from cli.main import main
from core.preprocess import preprocess_bytes
from model.checkpoint import load_model
from service.artifacts import ArtifactError, load_artifacts
from tests.support import DESIGN_LAYERS as LAYERS


def test_graph_contract(exported_artifacts: Path) -> None:
    model = onnx.load(str(exported_artifacts / "alexnet.onnx"))
    assert [i.name for i in model.graph.input] == ["input"]
    assert [o.name for o in model.graph.output] == ["logits", *LAYERS]
    batch_dim = model.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param  # dynamic batch axis
    assert model.opset_import[0].version >= 17
    # LRN as a window-sum convolution and elementwise ops (model.onnx_lrn), not ONNX LRN.
    ops = {node.op_type for node in model.graph.node}
    assert "LRN" not in ops and {"Sqrt", "Div"} <= ops


def test_every_layer_matches_pytorch_on_real_photos(
    exported_artifacts: Path, checkpoint_path: Path, photos: dict[str, bytes]
) -> None:
    model, _ = load_model(checkpoint_path)
    artifacts = load_artifacts(exported_artifacts)
    batch = np.stack([preprocess_bytes(p, artifacts.preprocess) for p in photos.values()])
    session = ort.InferenceSession(
        str(exported_artifacts / "alexnet.onnx"), providers=["CPUExecutionProvider"]
    )
    got = dict(
        zip(["logits", *LAYERS], session.run(["logits", *LAYERS], {"input": batch}), strict=True)
    )
    with torch.no_grad():
        expected = {k: v.numpy() for k, v in model.forward_all(torch.from_numpy(batch)).items()}
    for name in LAYERS:
        assert got[name].shape == expected[name].shape
        assert np.max(np.abs(got[name] - expected[name])) < 1e-4, name
    np.testing.assert_array_equal(got["logits"], got["fc8"])


def test_manifest_has_what_the_service_needs(exported_artifacts: Path) -> None:
    manifest = json.loads((exported_artifacts / "manifest.json").read_text())
    assert manifest["input"] == {"name": "input", "shape": [3, 227, 227], "dtype": "float32"}
    assert manifest["labels"] == [f"class_{i}" for i in range(10)]
    assert [layer["name"] for layer in manifest["layers"]] == LAYERS
    conv1 = manifest["layers"][0]
    assert (conv1["kernel"], conv1["stride"], conv1["output_shape"]) == (11, 4, [96, 55, 55])
    assert (conv1["receptive_field"], conv1["jump"]) == (11, 4)
    assert set(manifest["preprocess"]) >= {"resize", "crop", "mean", "std", "interpolation"}
    assert len(manifest["files"]["fp32"]["sha256"]) == 64
    assert 0.0 <= manifest["files"]["int8"]["top1_agreement"] <= 1.0
    assert max(manifest["files"]["fp32"]["max_abs_diff_vs_pytorch"].values()) < 1e-4


def test_checksum_mismatch_is_refused(exported_artifacts: Path, tmp_path: Path) -> None:
    copy = tmp_path / "artifacts"
    shutil.copytree(exported_artifacts, copy)
    data = bytearray((copy / "alexnet.onnx").read_bytes())
    data[-10] ^= 0xFF
    (copy / "alexnet.onnx").write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256"):
        load_artifacts(copy)


def test_export_refuses_a_model_that_does_not_match(
    checkpoint_path: Path, photo_folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import model.export as export_module

    real_build = export_module.build_onnx_model

    def broken_build(arch, weights):  # type: ignore[no-untyped-def]
        weights = dict(weights)
        weights["layers.conv3.bias"] = weights["layers.conv3.bias"] + 0.5
        return real_build(arch, weights)

    monkeypatch.setattr(export_module, "build_onnx_model", broken_build)
    status = main(
        [
            "export",
            "--checkpoint",
            str(checkpoint_path),
            "--out",
            str(tmp_path / "a"),
            "--data",
            str(photo_folder),
        ]
    )
    assert status == 2
    assert not (tmp_path / "a" / "alexnet.onnx").exists()


def test_missing_checkpoint_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["export", "--checkpoint", str(tmp_path / "nope.pt")]) == 2
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err


def test_fp16_variant(checkpoint_path: Path, photo_folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "fp16"
    assert (
        main(
            [
                "export",
                "--checkpoint",
                str(checkpoint_path),
                "--out",
                str(out),
                "--data",
                str(photo_folder),
                "--fp16",
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["files"]["fp16"]["top1_agreement"] >= 0.8
    session = ort.InferenceSession(
        str(out / "alexnet.fp16.onnx"), providers=["CPUExecutionProvider"]
    )
    assert session.get_inputs()[0].type == "tensor(float)"
    assert session.get_outputs()[0].type == "tensor(float)"


def test_int8_keeps_the_logits_layer_and_lrn_sums_in_fp32(exported_artifacts: Path) -> None:
    model = onnx.load(str(exported_artifacts / "alexnet.int8.onnx"))
    nodes = {node.name: node for node in model.graph.node}
    producers = {output: node for node in model.graph.node for output in node.output}
    float_weights = {
        i.name for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT
    }

    def weight_is_float(name: str) -> bool:
        return nodes[name].input[1] in float_weights

    assert weight_is_float("fc8") and weight_is_float("norm1_window_sum")
    assert weight_is_float("norm2_window_sum")
    # ... while the other layers run on int8 weights (fed through DequantizeLinear).
    for name in ("conv1", "conv5", "fc6", "fc7"):
        assert producers[nodes[name].input[1]].op_type == "DequantizeLinear", name
