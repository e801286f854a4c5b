"""Top-activating patches per conv channel: what does conv3 channel 17 look for?

As OpenAI Microscope does for AlexNet: the export's images are run through the
written `alexnet.onnx` and, for every channel of every convolution, the `top_k`
distinct images on which the channel responds most strongly are kept, each with the
unit (row, col) of its largest activation there. The service crops that unit's
receptive field out of the image on request.

The file keeps the input crops themselves, not cropped patches: with a few hundred
images nearly every image is some channel's favourite (measured with 256 shapes: 253
kept for a model trained to 94.7%, 247 for the seeded test model; 493 of 512 for
another), so 1376 channels x 9 patches would hold each image's pixels about 48 times
over (132 MB at a 64-pixel side, against 40 MB for 256 crops), and storing the crops
keeps the patches exact and at full resolution.

`channel_patches.npz` (format alexnet-channel-patches/1), every array plain numpy:
- `images`: uint8 (M, H, W, 3), the preprocessed input crops (before /255 and
  (x - mean) / std) of the M distinct images some channel's patches come from;
  `image_names` (M,) their names, `image_numbers` (M,) their place among all images run.
- per conv layer L with C channels: `L.activation` float32 (C, K), descending per
  channel; `L.image` int32 (C, K), a row of `images` (-1 where the channel fired,
  i.e. was above zero somewhere, on fewer than K images); `L.row`, `L.col` int16
  (C, K), the unit; `L.firing` int32 (C,), on how many of the images run it fired.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image

from core.manifest import INPUT_NAME, ChannelPatches, sha256_file
from core.preprocess import PreprocessSpec, normalise
from core.runtime import cpu_session
from model.architecture import Architecture
from model.export_config import ExportConfig
from model.verify_images import image_source, sample_crops

PATCHES_FILE = "channel_patches.npz"
FORMAT = "alexnet-channel-patches/1"
BATCH = 32


@dataclass
class TopUnits:
    """For every channel of one layer: its best images, best first, and where it fired."""

    activation: np.ndarray  # (C, K) float32
    image: np.ndarray  # (C, K) int64: an image's number among those run; -1: none
    row: np.ndarray  # (C, K)
    col: np.ndarray  # (C, K)
    firing: np.ndarray  # (C,) int64: images on which the channel was above zero anywhere

    @classmethod
    def empty(cls, channels: int, k: int) -> TopUnits:
        none = np.full((channels, k), -1, np.int64)
        activation = np.full((channels, k), -np.inf, np.float32)
        return cls(activation, none, none.copy(), none.copy(), np.zeros(channels, np.int64))

    def add(self, maps: np.ndarray, first_image: int) -> None:
        """Take in a batch's (N, C, H, W) activations, image numbers from `first_image` on."""
        count, channels, _, width = maps.shape
        flat = maps.reshape(count, channels, -1)
        position = flat.argmax(axis=2)  # the first of equal maxima, row by row
        best = np.take_along_axis(flat, position[..., None], axis=2)[..., 0]
        self.firing += (best > 0).sum(axis=0)
        k = self.activation.shape[1]
        images = np.broadcast_to(np.arange(first_image, first_image + count)[:, None], best.shape)
        # The kept entries come first and sorting is stable, so a tie goes to the earlier image.
        values = np.concatenate([self.activation, best.T], axis=1)
        order = np.argsort(-values, axis=1, kind="stable")[:, :k]

        def merge(kept: np.ndarray, new: np.ndarray) -> np.ndarray:
            return np.take_along_axis(np.concatenate([kept, new], axis=1), order, axis=1)

        self.activation = merge(self.activation, best.T)
        self.image = merge(self.image, images.T)
        self.row = merge(self.row, position.T // width)
        self.col = merge(self.col, position.T % width)

    def finish(self) -> None:
        """Drop the images on which a channel never fired: they show nothing it looks for."""
        silent = ~(self.activation > 0)
        self.activation[silent] = 0
        self.image[silent] = self.row[silent] = self.col[silent] = -1


def top_units(
    session: ort.InferenceSession, batches: Iterable[np.ndarray], layers: list[str], k: int
) -> dict[str, TopUnits]:
    """Each layer's channels' top-k distinct images over (N, 3, H, W) input batches."""
    found: dict[str, TopUnits] = {}
    first = 0
    for batch in batches:
        for name, maps in zip(layers, session.run(layers, {INPUT_NAME: batch}), strict=True):
            if name not in found:
                found[name] = TopUnits.empty(maps.shape[1], k)
            found[name].add(maps, first)
        first += len(batch)
    for units in found.values():
        units.finish()
    return found


def write_channel_patches(
    model_path: Path,
    crops: list[tuple[str, Image.Image]],
    spec: PreprocessSpec,
    layers: list[str],
    k: int,
    source: str,
) -> ChannelPatches:
    """Find every conv channel's top-k images with the written model; save them beside it."""
    k = min(k, len(crops))
    pixels = np.stack([np.asarray(crop, dtype=np.uint8) for _, crop in crops])
    batches = (
        np.stack([normalise(crop, spec) for _, crop in crops[start : start + BATCH]])
        for start in range(0, len(crops), BATCH)
    )
    found = top_units(cpu_session(model_path), batches, layers, k)
    kept = np.unique(np.concatenate([units.image.ravel() for units in found.values()]))
    kept = kept[kept >= 0]
    row_of = np.full(len(crops), -1, np.int64)  # image number -> row of `images`
    row_of[kept] = np.arange(len(kept))
    arrays: dict[str, np.ndarray] = {
        "images": pixels[kept],
        "image_names": np.array([crops[i][0] for i in kept], dtype=str),
        "image_numbers": kept.astype(np.int32),
    }
    for name, units in found.items():
        arrays[f"{name}.activation"] = units.activation.astype(np.float32)
        arrays[f"{name}.image"] = np.where(units.image >= 0, row_of[units.image], -1).astype(
            np.int32
        )
        arrays[f"{name}.row"] = units.row.astype(np.int16)
        arrays[f"{name}.col"] = units.col.astype(np.int16)
        arrays[f"{name}.firing"] = units.firing.astype(np.int32)
    path = model_path.parent / PATCHES_FILE
    partial = path.with_suffix(".partial")
    with partial.open("wb") as handle:  # a file object: savez would append .npz to a name
        np.savez_compressed(handle, **arrays)  # type: ignore[arg-type]
    partial.replace(path)
    return ChannelPatches(
        path=path.name,
        sha256=sha256_file(path),
        bytes=path.stat().st_size,
        format=FORMAT,
        layers=layers,
        top_k=k,
        images=len(crops),
        images_kept=len(kept),
        source=source,
    )


def export_channel_patches(
    fp32: Path, arch: Architecture, spec: PreprocessSpec, config: ExportConfig
) -> ChannelPatches | None:
    """The export's step: patches of every conv layer from its images (unless turned off)."""
    if not config.patch_images:
        return None
    convs = [layer.name for layer in arch.layers if layer.kind == "conv"]
    crops = sample_crops(config.data, spec, config.patch_images)
    source = image_source(config.data)
    return write_channel_patches(fp32, crops, spec, convs, config.patch_top_k, source)
