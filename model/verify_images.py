"""Images for export: a verification batch, int8 calibration and top-1 agreement batches."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from core.errors import UserFacingError
from core.preprocess import PreprocessSpec, decode_image, preprocess_image
from model.architecture import Architecture
from model.data.folder import IMAGE_SUFFIXES

VERIFY_IMAGES = 8
CALIBRATION_IMAGES = 64
VALIDATION_IMAGES = 200
BATCH = 16


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
    tensors = _folder_tensors(data, spec, wanted) if data else _shapes_tensors(spec, wanted)
    if len(tensors) < 2:
        raise UserFacingError(f"need at least 2 readable images in {data} to verify the export")
    verify = np.stack(tensors[:VERIFY_IMAGES])
    rest = tensors[VERIFY_IMAGES:] or tensors
    calibration = rest[:CALIBRATION_IMAGES]
    validation = rest[CALIBRATION_IMAGES:] or rest
    return verify, _batches(calibration), _batches(validation)


def _batches(tensors: list[np.ndarray]) -> list[np.ndarray]:
    return [np.stack(tensors[i : i + BATCH]) for i in range(0, len(tensors), BATCH)]


def _shapes_tensors(spec: PreprocessSpec, count: int) -> list[np.ndarray]:
    from model.data.shapes import SHAPE_CLASSES, generate_image

    rng = np.random.default_rng(12345)  # a fixed draw, unlike any training seed's
    return [
        preprocess_image(generate_image(i % len(SHAPE_CLASSES), rng), spec) for i in range(count)
    ]


def _folder_tensors(root: Path, spec: PreprocessSpec, count: int) -> list[np.ndarray]:
    if not root.is_dir():
        raise UserFacingError(f"image folder {root} does not exist")
    paths = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    # Interleave classes (sub-folders) so every subset sees all of them.
    rng = np.random.default_rng(0)
    rng.shuffle(paths)
    tensors = []
    for path in paths:
        try:
            tensors.append(preprocess_image(decode_image(path.read_bytes()), spec))
        except ValueError:
            continue  # an unreadable file is skipped: the export is checked on the rest
        if len(tensors) == count:
            break
    return tensors
