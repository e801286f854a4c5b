"""manifest.json as one typed contract: what export writes, the service reads, or refuses."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from core.errors import ArtifactError
from core.manifest import Manifest, read_manifest, serving_version, verify_files, write_manifest
from model.architecture import layer_table, paper_alexnet

# Written by `alexnet export` before the manifest became a pydantic model (commit 801ebc4),
# for the trained demo model: artifacts folders of that time must still be read.
BEFORE_REDESIGN = Path(__file__).resolve().parent.parent / "data" / "manifest-before-redesign.json"


# A channel_patches entry as `alexnet export` writes it (the old manifest above has none).
PATCHES = {
    "path": "channel_patches.npz",
    "sha256": "0" * 64,
    "bytes": 1,
    "format": "alexnet-channel-patches/1",
    "layers": ["conv1", "conv2", "conv3", "conv4", "conv5"],
    "top_k": 9,
    "images": 256,
    "images_kept": 256,
    "source": "shapes (drawn procedurally, seed 12345)",
}


def folder_with(tmp_path: Path, manifest: dict[str, Any] | str) -> Path:
    folder = tmp_path / "artifacts"
    folder.mkdir(exist_ok=True)
    text = manifest if isinstance(manifest, str) else json.dumps(manifest)
    (folder / "manifest.json").write_text(text)
    return folder


@pytest.fixture
def old() -> dict[str, Any]:
    return json.loads(BEFORE_REDESIGN.read_text())


def test_a_manifest_written_before_the_redesign_is_read(
    tmp_path: Path, old: dict[str, Any]
) -> None:
    manifest = read_manifest(folder_with(tmp_path, old))
    assert manifest.labels == old["labels"]
    assert manifest.files["int8"].top1_agreement == old["files"]["int8"]["top1_agreement"]
    assert manifest.layer("conv5") is not None and manifest.layer("conv5").receptive_field == 163  # type: ignore[union-attr]
    # Written back, it is the same document (no field lost or renamed).
    assert json.loads(manifest.dumps()) == old


def test_the_layer_table_is_the_manifest_layer_type() -> None:
    rows = layer_table(paper_alexnet(10))
    assert [(row.name, row.receptive_field, row.jump) for row in rows][:3] == [
        ("conv1", 11, 4),
        ("pool1", 19, 8),
        ("norm1", 19, 8),
    ]


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda m: m.update(colour="blue"), "colour: Extra inputs are not permitted"),
        (lambda m: m["files"]["fp32"].update(checksum="x"), "files.fp32.checksum"),
        (lambda m: m.pop("labels"), "labels: Field required"),
        (lambda m: m["input"].update(shape=[3, "wide", 227]), "input.shape.1"),
        (lambda m: m["files"]["fp32"].update(sha256="nothex"), "files.fp32.sha256"),
        (lambda m: m["layers"][0].update(type="attention"), "layers.0.type"),
        (lambda m: m.update(format="alexnet-manifest/2"), "format"),
        (lambda m: m.update(num_classes=3), "3"),
        (lambda m: m["files"].pop("fp32"), "no fp32 model"),
        (lambda m: m.update(outputs=["logits"]), "outputs"),
        (lambda m: m.update(channel_patches={**PATCHES, "k": 9}), "channel_patches.k"),
        (
            lambda m: m.update(channel_patches={**PATCHES, "layers": ["conv1", "pool1"]}),
            "channel_patches.layers must be conv layers",
        ),
        (lambda m: m.update(channel_patches={**PATCHES, "top_k": 0}), "channel_patches.top_k"),
    ],
)
def test_unknown_missing_or_mistyped_fields_are_refused_in_one_line(
    tmp_path: Path, old: dict[str, Any], change: Any, named: str
) -> None:
    change(old)
    with pytest.raises(ArtifactError) as refused:
        read_manifest(folder_with(tmp_path, old))
    message = str(refused.value)
    assert named in message and "\n" not in message
    assert "re-export the model with `alexnet export" in message


def test_broken_json_and_missing_files_are_refused(tmp_path: Path, old: dict[str, Any]) -> None:
    with pytest.raises(ArtifactError, match="not valid JSON"):
        read_manifest(folder_with(tmp_path, '{"name": '))
    with pytest.raises(ArtifactError, match="does not exist"):
        read_manifest(tmp_path / "nowhere")
    folder = folder_with(tmp_path, old)
    with pytest.raises(ArtifactError, match=r"alexnet\.onnx \(fp32\) listed in the manifest"):
        verify_files(folder, read_manifest(folder))


def test_checksums_are_verified(tmp_path: Path, exported_artifacts: Path) -> None:
    folder = tmp_path / "copy"
    shutil.copytree(exported_artifacts, folder)
    manifest = read_manifest(folder)
    verify_files(folder, manifest)
    with (folder / "alexnet.int8.onnx").open("r+b") as handle:
        handle.seek(1000)
        byte = handle.read(1)
        handle.seek(1000)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(ArtifactError, match="sha256"):
        verify_files(folder, manifest)


@pytest.mark.parametrize("patches", [None, PATCHES], ids=["without patches", "with patches"])
def test_written_manifests_read_back_equal(
    tmp_path: Path, old: dict[str, Any], patches: dict[str, Any] | None
) -> None:
    manifest = Manifest.model_validate({**old, "channel_patches": patches})
    folder = tmp_path / "out"
    folder.mkdir()
    write_manifest(folder, manifest)
    assert read_manifest(folder) == manifest
    assert not list(folder.glob("*.partial"))


@pytest.mark.parametrize(
    ("version", "served"),
    [
        ("1", "1"),
        ("12", "12"),
        ("007", "7"),
        ("0", "1"),
        ("v2", "1"),
        ("2024.1", "1"),
        ("-3", "1"),
        ("\u0663", "1"),
    ],  # the last is Arabic-Indic three: a digit, not ASCII
)
def test_servers_publish_a_positive_integer_version(version: str, served: str) -> None:
    """Triton's URLs take [0-9]+ and perf_analyzer parses the version as an integer."""
    assert serving_version(version) == served


RECORD = {
    "format": "QDQ",
    "weights": {"type": "int8", "per_channel": True, "bits": 8},
    "activations": {"type": "uint8", "calibration": "MinMax", "images": 64},
    "fp32_nodes": ["fc8", "norm1_window_sum", "norm2_window_sum"],
    "lrn_window_sum": "matmul",
    "target_isa": "avx512_vnni",
    "onnxruntime": "1.31.1",
}


def test_the_int8_quantization_record_is_typed_and_round_trips(
    tmp_path: Path, old: dict[str, Any]
) -> None:
    old["files"]["int8"]["quantization"] = RECORD
    manifest = read_manifest(folder_with(tmp_path, old))
    record = manifest.files["int8"].quantization
    assert record is not None and record.weights.bits == 8 and record.target_isa == "avx512_vnni"
    assert json.loads(manifest.dumps()) == old


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda q: q["weights"].update(bits=6), "quantization.weights.bits"),
        (lambda q: q.update(target_isa="neon"), "quantization.target_isa"),
        (lambda q: q.update(lrn_window_sum="lrn"), "quantization.lrn_window_sum"),
        (lambda q: q.update(reduce_range=True), "Extra inputs are not permitted"),
        (lambda q: q["activations"].pop("images"), "quantization.activations.images"),
    ],
)
def test_a_bad_quantization_record_is_refused(
    tmp_path: Path, old: dict[str, Any], change: Any, named: str
) -> None:
    record = json.loads(json.dumps(RECORD))
    change(record)
    old["files"]["int8"]["quantization"] = record
    with pytest.raises(ArtifactError, match=named):
        read_manifest(folder_with(tmp_path, old))


def test_only_the_int8_file_carries_a_quantization_record(
    tmp_path: Path, old: dict[str, Any]
) -> None:
    old["files"]["fp32"]["quantization"] = RECORD
    with pytest.raises(ArtifactError, match="only the int8 file has a quantization record"):
        read_manifest(folder_with(tmp_path, old))
