"""Top-activating patches per conv channel, written by `alexnet export`.

The stored top-k are checked against onnxruntime run directly on the stored images, the
selection against a plain per-channel sort over every image, the images against the
photos they came from, and the file against its size bound.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from cli.main import main
from core.manifest import read_manifest, sha256_file
from core.preprocess import PreprocessSpec, normalise, resize_and_crop
from model.architecture import layer_table, paper_alexnet
from model.channel_patches import PATCHES_FILE, TopUnits, export_channel_patches, top_units
from model.checkpoint import load_model
from model.export_config import ExportConfig
from model.verify_images import sample_crops
from service.channel_patches import Window
from service.numerics.shifts import layer_footprint

CONVS = ["conv1", "conv2", "conv3", "conv4", "conv5"]
SPEC = PreprocessSpec.for_input(227)  # as the export writes it (crop-region resampling)


def session_on(artifacts: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(artifacts / "alexnet.onnx"), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def stored(exported_artifacts: Path) -> dict[str, np.ndarray]:
    with np.load(exported_artifacts / PATCHES_FILE, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def test_the_export_lists_the_file_with_its_checksum_and_parameters(
    exported_artifacts: Path, photo_folder: Path
) -> None:
    entry = read_manifest(exported_artifacts).channel_patches
    assert entry is not None
    path = exported_artifacts / entry.path
    assert entry.path == PATCHES_FILE
    assert (entry.sha256, entry.bytes) == (sha256_file(path), path.stat().st_size)
    assert entry.format == "alexnet-channel-patches/1"
    assert entry.layers == CONVS
    # The fixture exports with --data: five photos, so five patches per channel, not nine.
    assert (entry.images, entry.top_k, entry.source) == (5, 5, f"folder {photo_folder}")
    assert 1 <= entry.images_kept <= 5
    manifest = json.loads((exported_artifacts / "manifest.json").read_text())
    assert "channel_patches" not in manifest["files"]  # files holds the model precisions


def test_the_stored_images_are_the_photos_preprocessed_crops(
    stored: dict[str, np.ndarray], photo_folder: Path
) -> None:
    for name, pixels in zip(stored["image_names"], stored["images"], strict=True):
        with Image.open(photo_folder / str(name)) as photo:
            expected = np.asarray(resize_and_crop(photo.convert("RGB"), SPEC))
        np.testing.assert_array_equal(pixels, expected)


def test_the_top_k_are_the_top_k_by_onnxruntime_run_directly(
    exported_artifacts: Path, stored: dict[str, np.ndarray]
) -> None:
    batch = np.stack([normalise(Image.fromarray(pixels), SPEC) for pixels in stored["images"]])
    outputs = session_on(exported_artifacts).run(CONVS, {"input": batch})
    activations = dict(zip(CONVS, outputs, strict=True))
    for layer in CONVS:
        maps = activations[layer]  # (images, C, H, W)
        best = maps.reshape(*maps.shape[:2], -1).max(axis=2)  # per image and channel
        values, images = stored[f"{layer}.activation"], stored[f"{layer}.image"]
        rows, cols = stored[f"{layer}.row"], stored[f"{layer}.col"]
        np.testing.assert_array_equal(stored[f"{layer}.firing"], (best > 0).sum(axis=0))
        for channel in range(maps.shape[1]):
            used = images[channel] >= 0
            chosen = images[channel][used]
            # Distinct images, best first, each at the unit of its largest activation ...
            assert len(set(chosen.tolist())) == len(chosen)
            assert np.all(np.diff(values[channel][used]) <= 0)
            at_unit = maps[chosen, channel, rows[channel][used], cols[channel][used]]
            np.testing.assert_allclose(values[channel][used], at_unit, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(at_unit, best[chosen, channel], rtol=1e-5, atol=1e-6)
            # ... and every image that made the channel fire is among them (k = 5 = images).
            assert set(chosen.tolist()) == set(np.flatnonzero(best[:, channel] > 0).tolist())
            assert np.all(values[channel][~used] == 0)


def test_selection_over_batches_equals_a_plain_sort_over_all_images(
    exported_artifacts: Path,
) -> None:
    crops = sample_crops(None, SPEC, 24)
    batches = [
        np.stack([normalise(crop, SPEC) for _, crop in crops[i : i + 5]]) for i in range(0, 24, 5)
    ]
    session = session_on(exported_artifacts)
    found = top_units(session, batches, CONVS, k=4)
    # The reference runs the same batches (so the values are the same floats) and sorts.
    outputs = [session.run(CONVS, {"input": batch}) for batch in batches]
    for index, layer in enumerate(CONVS):
        maps = np.concatenate([output[index] for output in outputs])
        flat = maps.reshape(*maps.shape[:2], -1)
        for channel in range(maps.shape[1]):
            best = flat[:, channel].max(axis=1)
            order = sorted(range(24), key=lambda image: (-best[image], image))
            order = [image for image in order if best[image] > 0][:4]
            got = found[layer].image[channel]
            assert got[: len(order)].tolist() == order
            assert np.all(got[len(order) :] == -1)
            for slot, image in enumerate(order):
                position = int(flat[image, channel].argmax())
                width = maps.shape[3]
                assert found[layer].row[channel, slot] == position // width
                assert found[layer].col[channel, slot] == position % width
                assert found[layer].activation[channel, slot] == best[image]


def test_ties_go_to_the_earlier_image_and_a_silent_channel_keeps_none() -> None:
    units = TopUnits.empty(channels=2, k=2)
    maps = np.zeros((3, 2, 2, 2), np.float32)
    maps[:, 0, 1, 0] = [1.0, 2.0, 2.0]  # images 1 and 2 tie at the top
    units.add(maps[:2], first_image=0)
    units.add(maps[2:], first_image=2)
    units.finish()
    assert units.image.tolist() == [[1, 2], [-1, -1]]
    assert units.row.tolist() == [[1, 1], [-1, -1]] and units.col.tolist() == [[0, 0], [-1, -1]]
    assert units.activation.tolist() == [[2.0, 2.0], [0.0, 0.0]]
    assert units.firing.tolist() == [3, 0]


def test_the_file_stays_within_its_size_bound(exported_artifacts: Path) -> None:
    entry = read_manifest(exported_artifacts).channel_patches
    assert entry is not None
    rows = {row.name: row for row in read_manifest(exported_artifacts).layers}
    # At most the kept crops' bytes plus 12 bytes per (channel, patch) and 4 per channel,
    # plus the zip's headers; compression only makes it smaller.
    index = sum(rows[name].channels * (entry.top_k * 12 + 4) for name in entry.layers)
    bound = entry.images_kept * 3 * 227 * 227 + index + 64 * 1024
    assert entry.bytes <= bound


def test_a_unit_depends_on_no_pixel_outside_its_window(checkpoint_path: Path) -> None:
    """Independent of the layer table: torch.autograd finds which input pixels matter."""
    model, _ = load_model(checkpoint_path)
    layers = layer_table(model.arch)
    image = torch.rand(1, 3, 227, 227, requires_grad=True)
    outputs = model.eval().forward_all(image)
    for layer in ("conv2", "conv5"):
        maps = outputs[layer][0]
        channel, row, col = np.unravel_index(int(maps.argmax()), tuple(maps.shape))
        (grad,) = torch.autograd.grad(maps[channel, row, col], image, retain_graph=True)
        touched = np.argwhere(grad[0].abs().sum(0).numpy() > 0)
        box = Window.of_unit(layer_footprint(layers, layer), int(row), int(col)).inside(227, 227)
        assert box is not None and len(touched) > 0
        assert touched[:, 0].min() >= box.top and touched[:, 0].max() < box.bottom
        assert touched[:, 1].min() >= box.left and touched[:, 1].max() < box.right


def test_patch_images_0_writes_none_and_the_option_is_bounded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = ExportConfig(out=tmp_path, patch_images=0)
    assert (
        export_channel_patches(tmp_path / "alexnet.onnx", paper_alexnet(10), SPEC, config) is None
    )
    assert not (tmp_path / PATCHES_FILE).exists()
    assert main(["export", "--patch-images", "5000"]) == 2
    assert "--patch-images" in capsys.readouterr().err
