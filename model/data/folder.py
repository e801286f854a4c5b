"""ImageFolder loading: one sub-folder per class, any JPEG/PNG, bad files skipped and counted.

Every image is decoded once while loading (so a corrupt file is found and reported
before training starts, not in the middle of an epoch) with `decode_image`, the
decoder the service uses: EXIF orientation applied, grey, RGBA, CMYK and 16-bit
converted to RGB. Small data sets are kept in memory, shrunk so that the shorter side
is the preprocessing `resize`; that is the same resize the service does, so an
evaluation crop of a kept image equals the service's crop of the file. Torch-free.
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from core.errors import UserFacingError
from core.preprocess import ImageDecodeError, decode_image

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
# Above this many images only the paths are kept and each image is decoded when used.
MAX_IMAGES_IN_MEMORY = 20_000

ImageSource = Image.Image | Path


class SkippedImageWarning(UserWarning):
    """An image in the data set could not be decoded and was left out."""


@dataclass
class LabelledImages:
    """Images (in memory, or paths to decode on use), their labels and the class names."""

    classes: list[str]
    images: list[ImageSource]
    labels: list[int]
    source: str
    skipped: int = 0

    def __len__(self) -> int:
        return len(self.images)


def find_images(root: Path) -> tuple[list[str], list[tuple[Path, int]]]:
    """The sorted class folder names and every image file with its class index."""
    if not root.exists():
        raise UserFacingError(f"data set folder {root} does not exist")
    if not root.is_dir():
        raise UserFacingError(f"data set {root} is not a folder of class folders")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise UserFacingError(
            f"data set folder {root} has no class folders: expected one "
            "sub-folder of images per class (root/<class>/<image>)"
        )
    samples: list[tuple[Path, int]] = []
    for index, name in enumerate(classes):
        files = sorted(
            p
            for p in (root / name).rglob("*")
            if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
        )
        if not files:
            raise UserFacingError(
                f"class folder {root / name} has no images ({', '.join(sorted(IMAGE_SUFFIXES))})"
            )
        samples.extend((path, index) for path in files)
    return classes, samples


def load_image_folder(root: Path, *, resize: int = 256, workers: int = 2) -> LabelledImages:
    """Load an ImageFolder; unreadable images are skipped, each with a warning, and counted."""
    classes, samples = find_images(root)
    keep = len(samples) <= MAX_IMAGES_IN_MEMORY
    with ThreadPoolExecutor(max(1, workers)) as pool:  # Pillow decodes without the GIL
        results = list(pool.map(lambda s: _load_one(s[0], resize, keep), samples))
    images: list[ImageSource] = []
    labels: list[int] = []
    skipped = 0
    for (path, label), result in zip(samples, results, strict=True):
        if isinstance(result, str):
            # Warned here, not in the threads, so that warning filters apply as usual.
            warnings.warn(f"skipping {path}: {result}", SkippedImageWarning, stacklevel=2)
            skipped += 1
            continue
        images.append(result)
        labels.append(label)
    for index, name in enumerate(classes):
        if index not in labels:
            raise UserFacingError(f"class folder {root / name} has no readable images")
    return LabelledImages(classes, images, labels, source=str(root), skipped=skipped)


def _load_one(path: Path, resize: int, keep: bool) -> ImageSource | str:
    """The decoded (shrunk) image, or the path if not kept, or why it cannot be read."""
    try:
        image = decode_image(path.read_bytes(), draft_size=resize)
    except (ImageDecodeError, OSError) as exc:
        return str(exc)
    return shrink(image, resize) if keep else path


def read_image(source: ImageSource, resize: int) -> Image.Image:
    """The RGB image of a data set entry, decoding a path if it was not kept in memory."""
    if isinstance(source, Path):
        return decode_image(source.read_bytes(), draft_size=resize)
    return source


def shrink(image: Image.Image, resize: int) -> Image.Image:
    """Resize so that the shorter side is `resize`, as preprocessing does; never enlarge."""
    width, height = image.size
    if min(width, height) <= resize:
        return image
    scale = resize / min(width, height)
    return image.resize((round(width * scale), round(height * scale)), Image.Resampling.BILINEAR)


def stratified_split(
    labels: list[int], val_fraction: float, seed: int
) -> tuple[list[int], list[int]]:
    """(train, validation) indices: `val_fraction` of every class, the same for the same seed."""
    if not 0 < val_fraction < 1:
        raise UserFacingError(
            f"the validation fraction must be between 0 and 1, not {val_fraction}"
        )
    label_array = np.asarray(labels)
    rng = np.random.default_rng(seed)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(set(labels)):
        members = rng.permutation(np.flatnonzero(label_array == label))
        # Every class with two or more images gives at least one to each side.
        count = min(max(round(len(members) * val_fraction), 1), len(members) - 1)
        val.extend(members[:count].tolist())
        train.extend(members[count:].tolist())
    if not val:
        raise UserFacingError("too few images for a validation split: every class needs two")
    return sorted(train), sorted(val)
