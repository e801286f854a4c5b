"""The Triton model repository: config.pbtxt parsed by Triton's own protobuf schema.

The oracle is `model_config.proto` as compiled in tritonclient, parsed strictly
(an unknown field or a wrong enum fails), and the ONNX graph run by onnxruntime.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from google.protobuf import json_format, text_format
from onnx import TensorProto, helper, numpy_helper

from core.errors import UserFacingError
from core.manifest import InputTensor, Layer, Manifest, read_manifest
from core.triton_config import TensorSpec, model_config
from model.triton import graph_tensors, write_triton_repository
from tests.support import triton_protos

LABELS = [f"class {i}" for i in range(10)]


def type_name(number: int) -> str:
    return str(triton_protos().DataType.Name(number))


def parse_config(path: Path) -> Any:
    """config.pbtxt as a ModelConfig message; raises on anything Triton would not read."""
    return text_format.Parse(path.read_text(), triton_protos().ModelConfig())


def tiny_onnx(path: Path, *, batch: str | int = "N") -> Path:
    """input [N,3,227,227] -> conv1 [N,96,55,55] (11x11, stride 4) -> mean -> logits [N,10]."""
    rng = np.random.default_rng(0)
    weights = [
        numpy_helper.from_array(rng.normal(0, 0.01, (96, 3, 11, 11)).astype(np.float32), "w1"),
        numpy_helper.from_array(rng.normal(0, 0.1, (10, 96)).astype(np.float32), "w2"),
    ]
    nodes = [
        helper.make_node("Conv", ["input", "w1"], ["conv1"], kernel_shape=[11, 11], strides=[4, 4]),
        helper.make_node("GlobalAveragePool", ["conv1"], ["pooled"]),
        helper.make_node("Flatten", ["pooled"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "w2"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [batch, 3, 227, 227])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [batch, 10]),
            helper.make_tensor_value_info("conv1", TensorProto.FLOAT, [batch, 96, 55, 55]),
        ],
        weights,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, path)
    return path


CONV1 = {
    "name": "conv1",
    "type": "conv",
    "kernel": 11,
    "stride": 4,
    "padding": 0,
    "groups": 1,
    "in_channels": 3,
    "channels": 96,
    "output_shape": [96, 55, 55],
    "parameters": 96 * 3 * 11 * 11,
    "multiply_adds": 96 * 55 * 55 * 3 * 11 * 11,
    "receptive_field": 11,
    "jump": 4,
}


def tiny_manifest(**changes: Any) -> Manifest:
    """A valid manifest of the tiny model, with `changes` applied unchecked (as a manifest
    from another export would be: each part valid, the whole not matching the graph)."""
    manifest = Manifest.model_validate(
        {
            "name": "tiny",
            "version": "3",
            "variant": "tiny",
            "opset": 17,
            "files": {"fp32": {"path": "tiny.onnx", "sha256": "0" * 64, "bytes": 0}},
            "input": {"name": "input", "shape": [3, 227, 227], "dtype": "float32"},
            "outputs": ["logits", "conv1"],
            "preprocess": {"crop": 227},
            "labels": LABELS,
            "num_classes": len(LABELS),
            "parameters": CONV1["parameters"],
            "layers": [CONV1],
            "training": {"dataset": "none"},
        }
    )
    return manifest.model_copy(update=changes)


def _input(shape: list[int], name: str = "input") -> InputTensor:
    return InputTensor(name=name, shape=tuple(shape), dtype="float32")  # type: ignore[arg-type]


def _layer(name: str, shape: list[int]) -> Layer:
    return Layer.model_validate({**CONV1, "name": name, "output_shape": shape})


@pytest.fixture
def tiny_model(tmp_path: Path) -> Path:
    return tiny_onnx(tmp_path / "tiny.onnx")


def test_config_parses_strictly_and_matches_the_graph(tiny_model: Path, tmp_path: Path) -> None:
    folder = write_triton_repository(
        tiny_model, tiny_manifest(), tmp_path / "repo", max_batch_size=8
    )

    assert folder == tmp_path / "repo" / "tiny"
    config = parse_config(folder / "config.pbtxt")
    assert config.name == "tiny"
    assert config.platform == "onnxruntime_onnx"
    assert config.max_batch_size == 8
    assert config.dynamic_batching.max_queue_delay_microseconds == 5000
    assert [group.count for group in config.instance_group] == [1]
    assert [(t.name, type_name(t.data_type), list(t.dims)) for t in config.input] == [
        ("input", "TYPE_FP32", [3, 227, 227])
    ]
    # The reference for the output shapes: onnxruntime running the graph on a batch of 2.
    session = ort.InferenceSession(str(tiny_model), providers=["CPUExecutionProvider"])
    batch = np.zeros((2, 3, 227, 227), np.float32)
    names = [output.name for output in session.get_outputs()]
    ran = dict(zip(names, session.run(None, {"input": batch}), strict=True))
    declared = {t.name: [2, *t.dims] for t in config.output}
    assert declared == {name: list(array.shape) for name, array in ran.items()}
    assert {type_name(t.data_type) for t in config.output} == {"TYPE_FP32"}


def test_labels_file_and_model_copy(tiny_model: Path, tmp_path: Path) -> None:
    folder = write_triton_repository(tiny_model, tiny_manifest(), tmp_path / "repo")

    config = parse_config(folder / "config.pbtxt")
    logits = next(t for t in config.output if t.name == "logits")
    assert (folder / logits.label_filename).read_text().splitlines() == LABELS
    assert [t.label_filename for t in config.output if t.name != "logits"] == [""]
    assert (folder / "3" / "model.onnx").read_bytes() == tiny_model.read_bytes()
    assert sorted(p.name for p in folder.iterdir()) == ["3", "config.pbtxt", "labels.txt"]


def test_rewrite_replaces_the_model_folder(tiny_model: Path, tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    write_triton_repository(tiny_model, tiny_manifest(), repo)
    folder = write_triton_repository(tiny_model, tiny_manifest(version="v2"), repo)

    # A version that is not a positive integer becomes 1; the stale version 3 is gone.
    assert sorted(p.name for p in folder.iterdir()) == ["1", "config.pbtxt", "labels.txt"]
    assert sorted(p.name for p in repo.iterdir()) == ["tiny"]


def test_the_json_form_is_the_same_model_config(tiny_model: Path, tmp_path: Path) -> None:
    """What the service answers at /config (core's dict, read as protobuf JSON by Triton's
    schema, strictly) and what config.pbtxt says are one ModelConfig."""
    folder = write_triton_repository(
        tiny_model, tiny_manifest(), tmp_path / "repo", max_batch_size=8, max_queue_delay_us=700
    )
    inputs, outputs = graph_tensors(onnx.load(str(tiny_model)))
    as_json = model_config("tiny", inputs, outputs, max_batch_size=8, max_queue_delay_us=700)
    parsed = json_format.ParseDict(json.loads(json.dumps(as_json)), triton_protos().ModelConfig())
    assert parsed == parse_config(folder / "config.pbtxt")
    assert parsed.instance_group[0].kind == triton_protos().ModelInstanceGroup.KIND_AUTO


def test_bytes_are_type_string_in_a_config() -> None:
    config = model_config(
        "img", [TensorSpec("input", "BYTES", (1,))], [], max_batch_size=4, max_queue_delay_us=0
    )
    parsed = json_format.ParseDict(config, triton_protos().ModelConfig())
    assert type_name(parsed.input[0].data_type) == "TYPE_STRING"


def test_parser_is_strict(tiny_model: Path, tmp_path: Path) -> None:
    """The oracle itself: a misspelt field or an unknown type is an error, not ignored."""
    folder = write_triton_repository(tiny_model, tiny_manifest(), tmp_path / "repo")
    text = (folder / "config.pbtxt").read_text()
    for broken in (text.replace("dims:", "dimz:", 1), text.replace("TYPE_FP32", "TYPE_F32", 1)):
        with pytest.raises(text_format.ParseError):
            text_format.Parse(broken, triton_protos().ModelConfig())


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"input": _input([3, 224, 224])}, "inputs"),
        ({"input": _input([3, 227, 227], name="data")}, "inputs"),
        ({"labels": LABELS[:9]}, "logits"),
        ({"layers": [_layer("conv1", [96, 27, 27])]}, "conv1"),
        ({"layers": [_layer("conv2", [256, 27, 27])]}, "conv2"),
        ({"labels": [*LABELS[:9], "two\nlines"]}, "line break"),
        ({"name": "../escape"}, "model name"),
    ],
)
def test_mismatched_manifest_is_refused(
    tiny_model: Path, tmp_path: Path, changes: dict[str, Any], message: str
) -> None:
    with pytest.raises(UserFacingError, match=message):
        write_triton_repository(tiny_model, tiny_manifest(**changes), tmp_path / "repo")
    assert not (tmp_path / "repo" / "tiny").exists()


def test_fixed_batch_axis_is_refused(tmp_path: Path) -> None:
    fixed = tiny_onnx(tmp_path / "fixed.onnx", batch=1)
    with pytest.raises(UserFacingError, match="batch axis"):
        write_triton_repository(fixed, tiny_manifest(), tmp_path / "repo")


def test_exported_alexnet(exported_artifacts: Path, tmp_path: Path) -> None:
    """The project's own export: every layer of the manifest is an output with its shape."""
    manifest = json.loads((exported_artifacts / "manifest.json").read_text())
    folder = write_triton_repository(
        exported_artifacts / "alexnet.onnx", read_manifest(exported_artifacts), tmp_path
    )

    config = parse_config(folder / "config.pbtxt")
    outputs = {t.name: list(t.dims) for t in config.output}
    layer_names = [row["name"] for row in manifest["layers"]]
    assert [t.name for t in config.output] == ["logits", *layer_names]
    assert outputs["logits"] == [len(manifest["labels"])]
    assert all(outputs[row["name"]] == row["output_shape"] for row in manifest["layers"])
    assert [list(t.dims) for t in config.input] == [manifest["input"]["shape"]]
    assert (folder / "labels.txt").read_text().splitlines() == manifest["labels"]
