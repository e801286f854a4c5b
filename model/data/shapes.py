"""The procedural `shapes` data set: ten classes of geometric patterns, drawn on demand.

It exists so that `alexnet train --dataset shapes` needs no download and finishes in
minutes on a laptop CPU. Every image has a random position, scale, rotation,
foreground and background colour and pixel noise; the class is the only thing a
network can rely on. The classes mix texture-like patterns (seen by conv1 alone) with
outlines that need the deeper layers. No class is a mirror image of another, so a
horizontal flip never changes the label. Torch-free: PIL and numpy only.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

SHAPE_CLASSES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "cross",
    "ring",
    "horizontal_stripes",
    "vertical_stripes",
    "diagonal_stripes",
    "checkerboard",
    "dots",
)

Mask = np.ndarray  # (size, size) bool: True where the foreground colour goes


def _colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """A background and a foreground colour that differ clearly in brightness."""
    while True:
        background, foreground = rng.integers(0, 256, size=(2, 3))
        # Rec. 601 luma: the pattern must stay visible to a grey-scale eye too.
        luma = np.array([0.299, 0.587, 0.114])
        if abs(float(luma @ background) - float(luma @ foreground)) >= 100:
            return background.astype(np.float32), foreground.astype(np.float32)


def _polygon(points: np.ndarray, centre: np.ndarray, radius: float, angle: float) -> list:
    """Unit-circle `points` scaled by `radius`, turned by `angle` and moved to `centre`."""
    cos, sin = np.cos(angle), np.sin(angle)
    turned = points @ np.array([[cos, sin], [-sin, cos]]) * radius + centre
    return [tuple(p) for p in turned.tolist()]


def _draw_outline(kind: str) -> Callable[[ImageDraw.ImageDraw, np.ndarray, float, float], None]:
    def draw(canvas: ImageDraw.ImageDraw, centre: np.ndarray, radius: float, angle: float) -> None:
        x, y = centre
        if kind == "circle":
            canvas.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
        elif kind == "ring":
            canvas.ellipse((x - radius, y - radius, x + radius, y + radius), fill=255)
            inner = radius * 0.6
            canvas.ellipse((x - inner, y - inner, x + inner, y + inner), fill=0)
        elif kind == "square":
            corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * 0.8
            canvas.polygon(_polygon(corners, centre, radius, angle), fill=255)
        elif kind == "triangle":
            # Pointing up (before the small turn), so a mirror image is still a triangle.
            corners = np.array([[0.0, -1.0], [0.87, 0.5], [-0.87, 0.5]])
            canvas.polygon(_polygon(corners, centre, radius, angle), fill=255)
        else:  # cross: a plus sign whose arms are a third of its width
            arm = 1 / 3
            for corners in (
                np.array([[-1, -arm], [1, -arm], [1, arm], [-1, arm]]),
                np.array([[-arm, -1], [arm, -1], [arm, 1], [-arm, 1]]),
            ):
                canvas.polygon(_polygon(corners, centre, radius, angle), fill=255)

    return draw


def _outline_mask(
    kind: str, rng: np.random.Generator, size: int, place: tuple[float, float, float] | None = None
) -> Mask:
    """One large filled shape near the centre, with a random size, offset and slight turn.

    `place` = (x, y, radius) in pixels puts it there instead (for tests of where the
    network looks).
    """
    image = Image.new("L", (size, size), 0)
    # Large and roughly centred: a network trained for minutes cannot also learn to find
    # small shapes anywhere in the picture.
    radius = float(rng.uniform(0.25, 0.36)) * size
    offset = rng.uniform(-0.1, 0.1, size=2) * size
    centre = np.clip(size / 2 + offset, radius, size - radius)
    if place is not None:
        centre, radius = np.array(place[:2], np.float64), place[2]
    angle = float(rng.uniform(-0.17, 0.17))  # about +-10 degrees
    _draw_outline(kind)(ImageDraw.Draw(image), centre, radius, angle)
    return np.asarray(image) > 127


def _texture_mask(kind: str, rng: np.random.Generator, size: int) -> Mask:
    """A periodic pattern over the whole image, with a random period, phase and slight turn."""
    y, x = np.mgrid[0:size, 0:size].astype(np.float32)
    period = float(rng.uniform(0.07, 0.14)) * size
    phase = rng.uniform(0, period, size=2)
    turn = float(rng.uniform(-0.09, 0.09))  # about +-5 degrees
    if kind == "checkerboard" or kind == "dots":
        cos, sin = np.cos(turn), np.sin(turn)
        u, v = x * cos + y * sin + phase[0], -x * sin + y * cos + phase[1]
        if kind == "checkerboard":
            return (np.floor(u / period) + np.floor(v / period)) % 2 == 1
        du, dv = (u % period) - period / 2, (v % period) - period / 2
        return np.hypot(du, dv) < period * float(rng.uniform(0.22, 0.35))
    direction = {
        "horizontal_stripes": np.pi / 2,
        "vertical_stripes": 0.0,
        "diagonal_stripes": np.pi / 4,
    }[kind] + turn
    along = x * np.cos(direction) + y * np.sin(direction) + phase[0]
    return (along % period) < period * float(rng.uniform(0.4, 0.6))


_NOISE_SIDE = 512


@functools.cache
def _noise(size: int) -> np.ndarray:
    """A fixed field of unit Gaussian noise; each image takes a random window of it.

    Drawing fresh noise for every pixel was the slowest step of generating an image.
    """
    side = max(size, _NOISE_SIDE)
    return np.random.default_rng(0).standard_normal((side, side, 3), dtype=np.float32)


TEXTURES = frozenset(
    {"horizontal_stripes", "vertical_stripes", "diagonal_stripes", "checkerboard", "dots"}
)


def generate_image(
    class_index: int,
    rng: np.random.Generator,
    size: int = 256,
    place: tuple[float, float, float] | None = None,
) -> Image.Image:
    """One RGB image of class `SHAPE_CLASSES[class_index]`, drawn with `rng`.

    `place` = (x, y, radius) puts an outline class's shape at a known spot.
    """
    kind = SHAPE_CLASSES[class_index]
    if kind in TEXTURES:
        if place is not None:
            raise ValueError(f"{kind} is a texture over the whole image: it has no place")
        mask = _texture_mask(kind, rng, size)
    else:
        mask = _outline_mask(kind, rng, size, place)
    background, foreground = _colours(rng)
    pixels = np.where(mask[..., None], foreground, background)
    top, left = rng.integers(0, _NOISE_SIDE - size + 1, size=2) if size <= _NOISE_SIDE else (0, 0)
    noise = _noise(size)[top : top + size, left : left + size]
    pixels += noise * np.float32(rng.uniform(0, 8))
    return Image.fromarray(np.clip(pixels + 0.5, 0, 255).astype(np.uint8), "RGB")


def generate_images(
    per_class: int, *, size: int = 256, seed: int = 0
) -> tuple[list[Image.Image], list[int]]:
    """`per_class` images of every class, in memory, with their labels (class-interleaved)."""
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for _ in range(per_class):
        for index in range(len(SHAPE_CLASSES)):
            images.append(generate_image(index, rng, size))
            labels.append(index)
    return images, labels


def write_shapes_dataset(root: Path, per_class: int, *, size: int = 256, seed: int = 0) -> None:
    """Write `per_class` PNGs of every class as an ImageFolder: root/<class>/<n>.png."""
    images, labels = generate_images(per_class, size=size, seed=seed)
    counters = dict.fromkeys(range(len(SHAPE_CLASSES)), 0)
    for name in SHAPE_CLASSES:
        (root / name).mkdir(parents=True, exist_ok=True)
    for image, label in zip(images, labels, strict=True):
        image.save(root / SHAPE_CLASSES[label] / f"{counters[label]:05d}.png")
        counters[label] += 1
