"""Pictures of activations: a labelled grid of a layer's feature maps."""

from __future__ import annotations

import io
import math

import numpy as np
from PIL import Image, ImageDraw

from service.numerics.statistics import to_uint8

LABEL_HEIGHT = 12
GAP = 2
MIN_CELL = 32


def scale_each_to_uint8(maps: np.ndarray) -> np.ndarray:
    """Each (H, W) map to 0-255 on its own (its min to 0, its max to 255; constant: black)."""
    return np.stack([to_uint8(fmap) for fmap in maps])


def feature_grid_png(activation: np.ndarray, channels: list[int]) -> bytes:
    """A PNG grid of the chosen channels of a (C, H, W) or (C,) activation, each labelled.

    A fully connected layer's (C,) vector has no spatial maps: it is drawn as a
    square-ish grid of its units instead, one pixel each, scaled as one map.
    """
    if activation.ndim == 1:
        side = math.ceil(math.sqrt(len(activation)))
        padded = np.zeros(side * side, np.float32)
        padded[: len(activation)] = activation
        image = Image.fromarray(scale_each_to_uint8(padded.reshape(1, side, side))[0])
        image = image.resize((max(side, 256), max(side, 256)), Image.Resampling.NEAREST)
        return _png(image)
    maps = scale_each_to_uint8(activation[channels])
    height, width = maps.shape[1:]
    zoom = max(1, math.ceil(MIN_CELL / max(height, width)))
    cell_h, cell_w = height * zoom, width * zoom
    columns = math.ceil(math.sqrt(len(channels)))
    rows = math.ceil(len(channels) / columns)
    canvas = Image.new(
        "L", (columns * (cell_w + GAP) + GAP, rows * (cell_h + LABEL_HEIGHT + GAP) + GAP), color=40
    )
    draw = ImageDraw.Draw(canvas)
    for position, (channel, fmap) in enumerate(zip(channels, maps, strict=True)):
        row, column = divmod(position, columns)
        x = GAP + column * (cell_w + GAP)
        y = GAP + row * (cell_h + LABEL_HEIGHT + GAP)
        draw.text((x + 1, y), str(channel), fill=230)
        tile = Image.fromarray(fmap).resize((cell_w, cell_h), Image.Resampling.NEAREST)
        canvas.paste(tile, (x, y + LABEL_HEIGHT))
    return _png(canvas)


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # speed over a few percent of size
    return buffer.getvalue()
