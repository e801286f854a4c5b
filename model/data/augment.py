"""Training augmentation with PIL and numpy: random resized crop and horizontal flip.

Evaluation does not live here: it is `core.preprocess.preprocess_image`, the very
function the export and the service use, and both paths end in the same
`normalise(image, spec)`, so the network sees identically scaled inputs everywhere.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from core.preprocess import PreprocessSpec, normalise, preprocess_image

# Milder than torchvision's (0.08, 1): a run of minutes cannot learn from crops that
# have lost the object, and the eval centre crop keeps about 80% of the image.
CROP_SCALE = (0.5, 1.0)
CROP_RATIO = (3 / 4, 4 / 3)


def random_crop_box(
    width: int,
    height: int,
    rng: np.random.Generator,
    scale: tuple[float, float] = CROP_SCALE,
    ratio: tuple[float, float] = CROP_RATIO,
) -> tuple[int, int, int, int]:
    """A (left, top, right, bottom) box covering `scale` of the area at an aspect in `ratio`."""
    area = width * height
    log_ratio = (math.log(ratio[0]), math.log(ratio[1]))
    for _ in range(10):
        target = area * rng.uniform(*scale)
        aspect = math.exp(rng.uniform(*log_ratio))
        w, h = round(math.sqrt(target * aspect)), round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left = int(rng.integers(0, width - w + 1))
            top = int(rng.integers(0, height - h + 1))
            return left, top, left + w, top + h
    side = min(width, height)  # a very long image: fall back to the centred square
    left, top = (width - side) // 2, (height - side) // 2
    return left, top, left + side, top + side


def train_transform(
    image: Image.Image, spec: PreprocessSpec, rng: np.random.Generator
) -> np.ndarray:
    """A random crop resized to the input size, flipped half the time, normalised like eval."""
    box = random_crop_box(image.width, image.height, rng)
    resample = Image.Resampling[spec.interpolation.upper()]  # as preprocess.resize_and_crop
    crop = image.resize((spec.crop, spec.crop), resample, box=box)
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return normalise(crop, spec)


def eval_transform(image: Image.Image, spec: PreprocessSpec) -> np.ndarray:
    """Exactly the export's and the service's preprocessing: resize, centre crop, normalise."""
    return preprocess_image(image, spec)
