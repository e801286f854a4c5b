"""Pictures of a channel's top patches: a labelled grid, one patch, or one in its image."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from PIL import Image, ImageDraw

from service.channel_patches import PatchStore, TopPatch, Window
from service.pictures import png_bytes, tile_grid

GREY = 128  # past the image's edges: a neutral fill the eye reads as "no pixels here"
OUTLINE = (255, 215, 0)
MIN_CELL = 64  # conv1's 11-pixel patches are enlarged (nearest) to at least this in the grid


def patches_png(
    store: PatchStore, patches: list[TopPatch], rank: int | None, context: bool
) -> bytes:
    """All patches in a grid labelled "rank: activation"; or patch `rank` alone, or in context."""
    if rank is not None:
        patch = patches[rank - 1]
        image = store.images[patch.stored]
        if context:
            return png_bytes(outlined(image, patch.window))
        return png_bytes(Image.fromarray(cut_patch(image, patch.window)))
    cuts = [cut_patch(store.images[patch.stored], patch.window) for patch in patches]
    labels = [f"{patch.rank}: {patch.activation:.3g}" for patch in patches]
    columns = math.ceil(math.sqrt(len(cuts)))
    return png_bytes(tile_grid(cuts, columns=columns, labels=labels, min_cell=MIN_CELL))


def cut_patch(image: npt.NDArray[np.uint8], window: Window) -> npt.NDArray[np.uint8]:
    """The window's pixels of an (H, W, 3) image, grey where it reaches past the edges."""
    patch = np.full((window.size, window.size, 3), GREY, np.uint8)
    box = window.inside(image.shape[0], image.shape[1])
    if box is not None:
        top, left = box.top - window.top, box.left - window.left
        patch[top : top + box.bottom - box.top, left : left + box.right - box.left] = image[
            box.top : box.bottom, box.left : box.right
        ]
    return patch


def outlined(image: npt.NDArray[np.uint8], window: Window) -> Image.Image:
    """The whole image with the window's in-image part outlined."""
    picture = Image.fromarray(image)
    box = window.inside(image.shape[0], image.shape[1])
    if box is not None:
        ImageDraw.Draw(picture).rectangle(
            (box.left, box.top, box.right - 1, box.bottom - 1), outline=OUTLINE, width=2
        )
    return picture
