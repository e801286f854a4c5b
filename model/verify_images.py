"""Images for export: a verification batch, int8 calibration and top-1 agreement batches.

`sample_crops` is the one image source of the export (the folder given with --data, or
procedurally drawn shapes): the same images, in the same order, as 227x227 crops before
normalisation, for the channel patches, which keep the pixels themselves.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import UserFacingError
from core.preprocess import PreprocessSpec, decode_image, normalise, resize_and_crop
from model.architecture import Architecture
from model.data.folder import IMAGE_SUFFIXES

VERIFY_IMAGES = 8
CALIBRATION_IMAGES = 64
VALIDATION_IMAGES = 200
BATCH = 16
SHAPES_SEED = 12345  # a fixed draw, unlike any training seed's


def sample_batches(
    data: Path | None,
    spec: PreprocessSpec,
    arch: Architecture,
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """(verify batch, calibration batches, validation batches) from a folder or the shapes set.

    Calibration and validation draw from disjoint images so the int8 agreement is not
    measured on the images that tuned the quantiser.
    """
    wanted = VERIFY_IMAGES + CALIBRATION_IMAGES + VALIDATION_IMAGES
    tensors = [normalise(crop, spec) for _, crop in sample_crops(data, spec, wanted)]
    if len(tensors) < 2:
        raise UserFacingError(f"need at least 2 readable images in {data} to verify the export")
    verify = np.stack(tensors[:VERIFY_IMAGES])
    rest = tensors[VERIFY_IMAGES:] or tensors
    calibration = rest[:CALIBRATION_IMAGES]
    validation = rest[CALIBRATION_IMAGES:] or rest
    return verify, _batches(calibration), _batches(validation)


def _batches(tensors: list[np.ndarray]) -> list[np.ndarray]:
    return [np.stack(tensors[i : i + BATCH]) for i in range(0, len(tensors), BATCH)]


def sample_crops(
    data: Path | None, spec: PreprocessSpec, count: int
) -> list[tuple[str, Image.Image]]:
    """Up to `count` (name, crop) pairs: each image resized and centre-cropped, not normalised."""
    return _folder_crops(data, spec, count) if data else _shapes_crops(spec, count)


def image_source(data: Path | None) -> str:
    """Where `sample_crops` takes its images from, in words."""
    return f"folder {data}" if data else f"shapes (drawn procedurally, seed {SHAPES_SEED})"


def _shapes_crops(spec: PreprocessSpec, count: int) -> list[tuple[str, Image.Image]]:
    from model.data.shapes import SHAPE_CLASSES, generate_image

    rng = np.random.default_rng(SHAPES_SEED)
    crops = []
    for i in range(count):
        kind = i % len(SHAPE_CLASSES)
        image = generate_image(kind, rng)
        crops.append((f"{SHAPE_CLASSES[kind]} #{i}", resize_and_crop(image, spec)))
    return crops


def _folder_crops(root: Path, spec: PreprocessSpec, count: int) -> list[tuple[str, Image.Image]]:
    if not root.is_dir():
        raise UserFacingError(f"image folder {root} does not exist")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    # Interleave classes (sub-folders) so every subset sees all of them.
    rng = np.random.default_rng(0)
    rng.shuffle(paths)
    crops = []
    for path in paths:
        try:
            crop = resize_and_crop(decode_image(path.read_bytes()), spec)
        except ValueError:
            continue  # an unreadable file is skipped: the export is checked on the rest
        crops.append((path.relative_to(root).as_posix(), crop))
        if len(crops) == count:
            break
    return crops
