"""Every picture the service draws: arrays as PNGs, feature-map grids, filter tiles.

One scaling rule (`to_uint8`: an array's min to 0, its max to 255) and one grid
layout (`tile_grid`), so a convolution result, a layer's feature maps and conv1's
filters all look alike.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from service.numerics.errors import InvalidArgument

GAP = 2
LABEL_HEIGHT = 12
MIN_CELL = 32  # pixels: small maps are enlarged (nearest) to at least this
MIN_FILTER_CELL = 40  # filters are few and small (11x11): drawn a little larger
BACKGROUND = 40


def to_uint8(
    array: npt.ArrayLike, value_range: tuple[float, float] | None = None
) -> npt.NDArray[np.uint8]:
    """The array scaled linearly to 0-255: its min to 0, its max to 255; constant -> all 0.

    A (3, H, W) array is scaled jointly (one min and max over all channels), so
    the colours keep their relative strength; a constant array is drawn black,
    as the activation pictures draw a dead channel. `value_range` (low, high)
    replaces the array's own min and max, so several arrays share one scale
    (values outside it are clipped).
    """
    values = np.array(array, dtype=np.float32)  # the one working copy, scaled in place
    if values.size == 0:
        return np.zeros(values.shape, dtype=np.uint8)
    low, high = float(values.min()), float(values.max())
    if not (np.isfinite(low) and np.isfinite(high)):  # NaN spreads to min and max
        raise InvalidArgument("cannot draw an array holding NaN or infinity")
    if value_range is not None:
        low, high = value_range
    if not high > low:
        return np.zeros(values.shape, dtype=np.uint8)
    scale = 255.0 / (high - low)  # float64, and x * scale - low * scale cannot overflow
    values *= scale
    values -= low * scale
    np.rint(values, out=values)
    return np.clip(values, 0, 255, out=values).astype(np.uint8)


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # speed over a few percent of size
    return buffer.getvalue()


def array_png(array: npt.ArrayLike) -> bytes:
    """A PNG of a 2-D (grey) or (3, H, W) (RGB) array, scaled for viewing by `to_uint8`."""
    values = np.asarray(array)
    if values.ndim == 3 and values.shape[0] == 1:
        values = values[0]
    if not (values.ndim == 2 or (values.ndim == 3 and values.shape[0] == 3)) or values.size == 0:
        raise InvalidArgument(f"a picture needs a 2-D or (3, rows, cols) array, not {values.shape}")
    pixels = to_uint8(values)
    if pixels.ndim == 3:
        pixels = np.ascontiguousarray(pixels.transpose(1, 2, 0))
    return png_bytes(Image.fromarray(pixels))


def tile_grid(
    tiles: Sequence[npt.NDArray[np.uint8]],
    *,
    columns: int,
    labels: Sequence[str] | None = None,
    min_cell: int = MIN_CELL,
) -> Image.Image:
    """Equal-sized uint8 tiles ((H, W) grey or (H, W, 3) RGB) in rows, enlarged, maybe labelled."""
    height, width = tiles[0].shape[:2]
    zoom = max(1, math.ceil(min_cell / max(height, width)))
    cell_h, cell_w = height * zoom, width * zoom
    label_h = LABEL_HEIGHT if labels is not None else 0
    rows = math.ceil(len(tiles) / columns)
    mode = "L" if tiles[0].ndim == 2 else "RGB"
    size = (columns * (cell_w + GAP) + GAP, rows * (cell_h + label_h + GAP) + GAP)
    canvas = Image.new(mode, size, color=BACKGROUND if mode == "L" else (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    for position, tile in enumerate(tiles):
        row, column = divmod(position, columns)
        x, y = GAP + column * (cell_w + GAP), GAP + row * (cell_h + label_h + GAP)
        if labels is not None:
            draw.text((x + 1, y), labels[position], fill=230 if mode == "L" else (230,) * 3)
        picture = Image.fromarray(tile).resize((cell_w, cell_h), Image.Resampling.NEAREST)
        canvas.paste(picture, (x, y + label_h))
    return canvas


def feature_grid_png(activation: np.ndarray, channels: list[int]) -> bytes:
    """A PNG grid of the chosen channels of a (C, H, W) or (C,) activation, each labelled.

    Each map is scaled on its own. A fully connected layer's (C,) vector has no
    spatial maps: it is drawn as a square-ish grid of its units instead, one pixel
    each, scaled as one map.
    """
    if activation.ndim == 1:
        side = math.ceil(math.sqrt(len(activation)))
        padded = np.zeros(side * side, np.float32)
        padded[: len(activation)] = activation
        image = Image.fromarray(to_uint8(padded.reshape(side, side)))
        return png_bytes(image.resize((max(side, 256),) * 2, Image.Resampling.NEAREST))
    maps = [to_uint8(activation[channel]) for channel in channels]
    columns = math.ceil(math.sqrt(len(channels)))
    return png_bytes(tile_grid(maps, columns=columns, labels=[str(c) for c in channels]))


def filters_png(weights: npt.NDArray[np.float32], max_columns: int = 16) -> bytes:
    """(C, 3, k, k) weights as a grid of RGB tiles, each filter scaled to 0-255 on its own."""
    tiles = [np.ascontiguousarray(to_uint8(kernel).transpose(1, 2, 0)) for kernel in weights]
    grid = tile_grid(tiles, columns=min(max_columns, len(tiles)), min_cell=MIN_FILTER_CELL)
    return png_bytes(grid)


# Colours of the difference panel of the equivariance picture, by kind of map unit:
# interior black plus the difference, border dark red plus it, new units dark blue.
UNIT_COLOURS = np.array([[0, 0, 110], [80, 0, 0], [0, 0, 0]], np.int16)  # new, border, interior
SHIFT_CELL = 165  # a 55x55 conv1 map drawn 3x, room for a label of ~28 characters


@dataclass(frozen=True)
class ShiftPanels:
    """One row of the equivariance picture: the maps of one shift, as `service.numerics.shifts`."""

    moved: npt.NDArray[np.floating]  # the original map moved by whole units, (rows, cols)
    shifted: npt.NDArray[np.floating]  # the map of the shifted input
    kinds: npt.NDArray[np.int8]  # per position: 0 new, 1 border, 2 interior
    labels: tuple[str, str, str]


def shift_comparison_png(rows: Sequence[ShiftPanels]) -> bytes:
    """Per row: the original map moved, the shifted input's map and |their difference|.

    All maps share one scale (the lowest value black, the highest white), so that
    "the same" looks the same. The differences share another, 0 black and the
    largest difference of any row white, so an exact row stays black beside one
    that is not; border units are tinted red and new units (no counterpart) blue.
    """
    maps = np.stack([np.stack([row.moved, row.shifted]) for row in rows]).astype(np.float64)
    low, high = float(maps.min()), float(maps.max())
    differences = [
        np.abs(row.shifted.astype(np.float64) - row.moved.astype(np.float64)) for row in rows
    ]
    largest = max(
        float(d[row.kinds > 0].max(initial=0.0)) for d, row in zip(differences, rows, strict=True)
    )
    tiles: list[npt.NDArray[np.uint8]] = []
    labels: list[str] = []
    for row, difference in zip(rows, differences, strict=True):
        grey = to_uint8(np.stack([row.moved, row.shifted]), (low, high))
        tiles.extend(np.repeat(plane[..., None], 3, axis=2) for plane in grey)
        level = to_uint8(difference, (0.0, largest)).astype(np.int16)
        coloured = UNIT_COLOURS[row.kinds] + level[..., None]
        coloured[row.kinds == 0] = UNIT_COLOURS[0]  # nothing to compare: no difference drawn
        tiles.append(np.clip(coloured, 0, 255).astype(np.uint8))
        labels.extend(row.labels)
    return png_bytes(tile_grid(tiles, columns=3, labels=labels, min_cell=SHIFT_CELL))


BAR_COLOURS = ((150, 150, 150), (240, 240, 240), (230, 140, 40))
CHART_HEIGHT = 200
CHART_MARGIN = 40


def fraction_bars_png(
    groups: Sequence[str], series: Sequence[tuple[str, Sequence[float]]], title: str
) -> bytes:
    """A bar chart of fractions (0..1): one group of bars per entry of `groups`, one bar per series.

    The series' names make the legend, in the bars' colours (at most three series).
    """
    if not groups or not 1 <= len(series) <= len(BAR_COLOURS):
        raise InvalidArgument("a bar chart needs groups and one to three series")
    bar, gap = 14, 12
    group_width = len(series) * bar + gap
    width = max(2 * CHART_MARGIN + len(groups) * group_width, 320)
    height = CHART_HEIGHT + 2 * CHART_MARGIN + LABEL_HEIGHT * len(series)
    canvas = Image.new("RGB", (width, height), (BACKGROUND,) * 3)
    draw = ImageDraw.Draw(canvas)
    base = CHART_MARGIN + CHART_HEIGHT
    draw.text((CHART_MARGIN, 4), title, fill=(230,) * 3)
    for tick in (0.0, 0.5, 1.0):
        y = base - round(tick * CHART_HEIGHT)
        draw.line([(CHART_MARGIN - 4, y), (width - CHART_MARGIN, y)], fill=(90,) * 3)
        draw.text((4, y - 6), f"{tick:.1f}", fill=(200,) * 3)
    for g, name in enumerate(groups):
        x0 = CHART_MARGIN + gap // 2 + g * group_width
        for s, (_, values) in enumerate(series):
            value = min(max(float(values[g]), 0.0), 1.0)
            x = x0 + s * bar
            top = base - round(value * CHART_HEIGHT)
            draw.rectangle([(x, top), (x + bar - 2, base)], fill=BAR_COLOURS[s])
        draw.text((x0, base + 4), name, fill=(230,) * 3)
    for s, (name, _) in enumerate(series):
        y = base + 20 + s * LABEL_HEIGHT
        draw.rectangle([(CHART_MARGIN, y + 2), (CHART_MARGIN + 8, y + 10)], fill=BAR_COLOURS[s])
        draw.text((CHART_MARGIN + 14, y), name, fill=(230,) * 3)
    return png_bytes(canvas)


# A perceptual ramp (after matplotlib's "inferno"): dark purple, red, orange, pale yellow.
_RAMP = np.array(
    [[0, 0, 4], [87, 16, 110], [188, 55, 84], [249, 142, 9], [252, 255, 164]], np.float64
)


def heat_colours(heat: np.ndarray) -> npt.NDArray[np.uint8]:
    """(H, W) values in [0, 1] as (H, W, 3) colours of the ramp."""
    positions = np.linspace(0.0, 1.0, len(_RAMP))
    clipped = np.clip(heat, 0.0, 1.0)
    channels = [np.interp(clipped, positions, _RAMP[:, c]) for c in range(3)]
    return np.rint(np.stack(channels, axis=-1)).astype(np.uint8)


def heat_overlay_png(
    picture: npt.NDArray[np.uint8], heat: np.ndarray, opacity: float = 0.6
) -> bytes:
    """A heat map ((H, W) in [0, 1]) laid over an (H, W, 3) picture of the same size.

    Hot regions are opaque, cold ones let the picture through, so the map reads as
    "where on this image".
    """
    if picture.shape[:2] != heat.shape:
        raise InvalidArgument(f"a heat map {heat.shape} cannot cover a picture {picture.shape}")
    alpha = (opacity * np.clip(heat, 0.0, 1.0))[..., None]
    blended = picture * (1 - alpha) + heat_colours(heat) * alpha
    return png_bytes(Image.fromarray(np.rint(blended).astype(np.uint8), "RGB"))
