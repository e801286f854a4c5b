"""The shapes generator, the ImageFolder loader, the split and the augmentation."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from core.errors import UserFacingError
from core.preprocess import PreprocessSpec, preprocess_image
from model.data.augment import CROP_SCALE, random_crop_box, train_transform
from model.data.folder import (
    LabelledImages,
    SkippedImageWarning,
    load_image_folder,
    shrink,
    stratified_split,
)
from model.data.loader import ImageDataset, epoch_loader
from model.data.shapes import SHAPE_CLASSES, generate_image, generate_images, write_shapes_dataset

SPEC = PreprocessSpec.for_input(227)


def _pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


# --- shapes ---------------------------------------------------------------------------


def test_shapes_has_ten_distinct_classes_and_draws_each() -> None:
    assert len(SHAPE_CLASSES) >= 10
    assert len(set(SHAPE_CLASSES)) == len(SHAPE_CLASSES)
    rng = np.random.default_rng(0)
    for index in range(len(SHAPE_CLASSES)):
        image = generate_image(index, rng, size=96)
        assert image.mode == "RGB"
        assert image.size == (96, 96)
        assert _pixels(image).std() > 10  # a pattern, not a blank canvas


def test_shapes_are_deterministic_by_seed() -> None:
    first, labels = generate_images(2, size=64, seed=7)
    again, _ = generate_images(2, size=64, seed=7)
    other, _ = generate_images(2, size=64, seed=8)
    assert labels == list(range(len(SHAPE_CLASSES))) * 2
    assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(first, again, strict=True))
    assert not np.array_equal(_pixels(first[0]), _pixels(other[0]))


def test_stripes_run_the_way_their_class_says() -> None:
    """Horizontal stripes change from row to row, vertical ones from column to column."""
    rng = np.random.default_rng(3)
    horizontal = SHAPE_CLASSES.index("horizontal_stripes")
    vertical = SHAPE_CLASSES.index("vertical_stripes")
    for _ in range(5):
        grey = _pixels(generate_image(horizontal, rng, size=128)).mean(axis=2)
        assert np.abs(np.diff(grey, axis=0)).mean() > 1.5 * np.abs(np.diff(grey, axis=1)).mean()
        grey = _pixels(generate_image(vertical, rng, size=128)).mean(axis=2)
        assert np.abs(np.diff(grey, axis=1)).mean() > 1.5 * np.abs(np.diff(grey, axis=0)).mean()


def test_write_shapes_dataset_is_an_image_folder(tmp_path: Path) -> None:
    write_shapes_dataset(tmp_path, per_class=2, size=48, seed=1)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(SHAPE_CLASSES)
    for name in SHAPE_CLASSES:
        files = sorted((tmp_path / name).iterdir())
        assert len(files) == 2
        with Image.open(files[0]) as image:
            assert image.size == (48, 48)
    data = load_image_folder(tmp_path)
    assert data.classes == sorted(SHAPE_CLASSES)
    assert len(data) == 2 * len(SHAPE_CLASSES)


# --- ImageFolder ----------------------------------------------------------------------


def _save(path: Path, image: Image.Image, **options: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path, **options)


def _half_red_half_blue(width: int = 40, height: int = 20) -> Image.Image:
    array = np.zeros((height, width, 3), np.uint8)
    array[:, : width // 2] = (255, 0, 0)
    array[:, width // 2 :] = (0, 0, 255)
    return Image.fromarray(array)


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # the camera was turned: show the picture rotated 90 degrees clockwise
    _save(tmp_path / "a" / "turned.jpg", _half_red_half_blue(), exif=exif, quality=95)
    image = load_image_folder(tmp_path).images[0]
    assert isinstance(image, Image.Image)
    assert image.size == (20, 40)  # now taller than wide
    pixels = _pixels(image)
    assert pixels[5, 10, 0] > 200 > pixels[5, 10, 2]  # the left (red) half is on top
    assert pixels[35, 10, 2] > 200 > pixels[35, 10, 0]


@pytest.mark.parametrize("mode", ["L", "RGBA", "CMYK", "P"])
def test_other_colour_modes_become_rgb(tmp_path: Path, mode: str) -> None:
    image = _half_red_half_blue().convert(mode)
    suffix = ".jpg" if mode == "CMYK" else ".png"
    _save(tmp_path / "a" / f"image{suffix}", image)
    loaded = load_image_folder(tmp_path).images[0]
    assert isinstance(loaded, Image.Image)
    assert loaded.mode == "RGB"
    reference = _pixels(image.convert("RGB"))
    assert np.abs(_pixels(loaded) - reference).mean() < 8  # JPEG loses a little


def test_corrupt_images_are_skipped_counted_and_warned_about(tmp_path: Path) -> None:
    _save(tmp_path / "cats" / "good.png", _half_red_half_blue())
    _save(tmp_path / "dogs" / "good.png", _half_red_half_blue())
    (tmp_path / "dogs" / "garbage.jpg").write_bytes(b"this is not a JPEG")
    whole = io.BytesIO()
    _half_red_half_blue(400, 300).save(whole, "JPEG")
    (tmp_path / "dogs" / "truncated.jpg").write_bytes(whole.getvalue()[:300])
    (tmp_path / "dogs" / "notes.txt").write_text("not an image suffix: ignored, not counted")
    with pytest.warns(SkippedImageWarning) as caught:
        data = load_image_folder(tmp_path)
    assert data.skipped == 2
    assert len(caught) == 2
    assert {"garbage.jpg", "truncated.jpg"} == {
        next(n for n in ("garbage.jpg", "truncated.jpg") if n in str(w.message)) for w in caught
    }
    assert data.labels == [0, 1]


def test_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(UserFacingError, match="does not exist"):
        load_image_folder(tmp_path / "nowhere")


def test_folder_without_class_folders_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "loose.png").write_bytes(b"")
    with pytest.raises(UserFacingError, match="no class folders"):
        load_image_folder(tmp_path)


def test_class_folder_without_images_is_a_clear_error(tmp_path: Path) -> None:
    _save(tmp_path / "cats" / "good.png", _half_red_half_blue())
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "readme.txt").write_text("no pictures here")
    with pytest.raises(UserFacingError, match="dogs has no images"):
        load_image_folder(tmp_path)


def test_class_folder_with_only_corrupt_images_is_a_clear_error(tmp_path: Path) -> None:
    _save(tmp_path / "cats" / "good.png", _half_red_half_blue())
    (tmp_path / "dogs").mkdir()
    (tmp_path / "dogs" / "bad.png").write_bytes(b"\x89PNG broken")
    with (
        pytest.warns(SkippedImageWarning),
        pytest.raises(UserFacingError, match="dogs has no readable images"),
    ):
        load_image_folder(tmp_path)


def test_kept_images_give_the_same_eval_input_as_the_original() -> None:
    """Shrinking a kept image must not change what validation (and the service) sees
    beyond the one level by which resampling the crop region alone differs from
    resize-then-crop (`core.preprocess`; on noise, 52 of 154,587 values)."""
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
    kept = shrink(photo, SPEC.resize)
    assert min(kept.size) == SPEC.resize
    as_kept, as_sent = preprocess_image(kept, SPEC), preprocess_image(photo, SPEC)
    one_level = 1 / 255 / min(SPEC.std)
    assert np.max(np.abs(as_kept - as_sent)) <= one_level * 1.001
    assert np.mean(as_kept != as_sent) < 1e-3


# --- split ----------------------------------------------------------------------------


def test_split_is_stratified_disjoint_and_deterministic() -> None:
    labels = [0] * 50 + [1] * 30 + [2] * 10 + [3] * 2
    train, val = stratified_split(labels, 0.2, seed=5)
    assert sorted(train + val) == list(range(len(labels)))
    val_counts = np.bincount([labels[i] for i in val], minlength=4)
    assert val_counts.tolist() == [10, 6, 2, 1]
    assert stratified_split(labels, 0.2, seed=5) == (train, val)
    assert stratified_split(labels, 0.2, seed=6)[1] != val


def test_split_needs_two_images_in_some_class() -> None:
    with pytest.raises(UserFacingError, match="validation split"):
        stratified_split([0, 1, 2], 0.2, seed=0)


# --- augmentation and loading ---------------------------------------------------------


def test_random_crop_box_stays_inside_and_covers_the_scale() -> None:
    rng = np.random.default_rng(0)
    for width, height in ((256, 256), (640, 480), (227, 300)):
        shares = []
        for _ in range(50):
            left, top, right, bottom = random_crop_box(width, height, rng)
            assert 0 <= left < right <= width
            assert 0 <= top < bottom <= height
            shares.append((right - left) * (bottom - top) / (width * height))
        assert CROP_SCALE[0] * 0.98 <= min(shares) < max(shares) <= 1.0
    # No box of that area and aspect fits a 1:4 strip: the centred square instead.
    assert random_crop_box(300, 1200, rng) == (0, 450, 300, 750)


def test_train_transform_shape_normalisation_and_flip() -> None:
    colour = np.array([200, 100, 50], np.uint8)
    flat = Image.new("RGB", (300, 260), tuple(int(c) for c in colour))
    out = train_transform(flat, SPEC, np.random.default_rng(0))
    assert out.shape == (3, 227, 227)
    assert out.dtype == np.float32
    expected = (colour / 255 - np.array(SPEC.mean)) / np.array(SPEC.std)
    np.testing.assert_allclose(out[:, 100, 100], expected, rtol=1e-5)
    # Left red, right blue: a flip puts blue on the left, in about half of the draws.
    flips = sum(
        train_transform(_half_red_half_blue(256, 256), SPEC, np.random.default_rng(seed))[0, 113, 5]
        < 0
        for seed in range(40)
    )
    assert 8 <= flips <= 32


def test_datasets_and_loaders_are_deterministic_for_any_worker_count() -> None:
    images, labels = generate_images(2, size=64, seed=0)
    data = LabelledImages(list(SHAPE_CLASSES), list(images), labels, source="shapes")
    train = ImageDataset(data, list(range(8)), SPEC, train=True, seed=3)
    in_process = next(iter(epoch_loader(train, batch_size=4, workers=0, epoch=1, shuffle=True)))
    in_worker = next(iter(epoch_loader(train, batch_size=4, workers=1, epoch=1, shuffle=True)))
    assert in_process[0].shape == (4, 3, 227, 227)
    assert torch.equal(in_process[0], in_worker[0])
    assert torch.equal(in_process[1], in_worker[1])
    next_epoch = next(iter(epoch_loader(train, batch_size=4, workers=0, epoch=2, shuffle=True)))
    assert not torch.equal(in_process[0], next_epoch[0])
    evaluation = ImageDataset(data, [5], SPEC, train=False)
    tensor, label = evaluation[0]
    assert label == labels[5]
    np.testing.assert_array_equal(tensor.numpy(), preprocess_image(images[5], SPEC))


def test_large_sets_stay_on_disk_and_are_decoded_when_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from model.data import folder
    from model.data.loader import default_workers

    monkeypatch.setattr(folder, "MAX_IMAGES_IN_MEMORY", 1)
    for name in ("a", "b"):
        _save(tmp_path / name / "x.png", _half_red_half_blue(300, 260))
    data = load_image_folder(tmp_path)
    assert all(isinstance(image, Path) for image in data.images)
    assert default_workers(data) >= 1  # decoding files is worth a loader process
    tensor, label = ImageDataset(data, [1], SPEC, train=False)[0]
    assert label == 1
    reference = preprocess_image(_half_red_half_blue(300, 260), SPEC)
    np.testing.assert_array_equal(tensor.numpy(), reference)
