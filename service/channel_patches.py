"""A conv channel's top-activating patches: the export's file, read once and checked.

`channel_patches.npz` (written by `alexnet export`; its arrays are described in
model/channel_patches.py) holds the input crops the export ran and, for every channel
of every conv layer, its best images, best first, with the unit where the channel
fired most in each. A patch is that unit's receptive-field window of the crop (the
layer's `Footprint`, as the page's fields.js computes it: unit (row, col) sees rows
offset + row*jump .. + size - 1, the offset negative where padding comes first);
service/patch_pictures.py draws it.
"""

from __future__ import annotations

import asyncio
import threading
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from core.errors import ArtifactError
from core.manifest import ChannelPatches, Manifest
from service.artifacts import ModelArtifacts
from service.errors import BadInput, NotFound, ServiceError
from service.numerics.shifts import Footprint, layer_footprint


class PatchesUnreadable(ServiceError):
    """The file matches its checksum but not the manifest: an export bug, not the client's."""

    status, code = 500, "artifact_error"


@dataclass(frozen=True)
class Box:
    """Input rows top..bottom-1 and columns left..right-1."""

    top: int
    left: int
    bottom: int
    right: int


@dataclass(frozen=True)
class Window:
    """The size x size input square one unit sees, with its top-left corner (maybe negative)."""

    top: int
    left: int
    size: int

    @classmethod
    def of_unit(cls, footprint: Footprint, row: int, col: int) -> Window:
        offset, jump = footprint.offset, footprint.jump
        return cls(offset + row * jump, offset + col * jump, footprint.size)

    def inside(self, height: int, width: int) -> Box | None:
        """The part of the window inside a height x width input (None if no part is)."""
        top, left = max(0, self.top), max(0, self.left)
        bottom, right = min(height, self.top + self.size), min(width, self.left + self.size)
        return Box(top, left, bottom, right) if bottom > top and right > left else None


@dataclass(frozen=True)
class LayerPatches:
    """One layer's best images per channel; arrays (C, K) but `firing` (C,)."""

    activation: npt.NDArray[np.float32]
    image: npt.NDArray[np.int32]  # a row of PatchStore.images; -1: fired on fewer images
    row: npt.NDArray[np.int16]
    col: npt.NDArray[np.int16]
    firing: npt.NDArray[np.int32]  # images (of all run) on which the channel fired anywhere


@dataclass(frozen=True)
class PatchStore:
    """The contents of channel_patches.npz, checked against the manifest."""

    images: npt.NDArray[np.uint8]  # (M, H, W, 3) input crops
    names: list[str]
    numbers: npt.NDArray[np.int32]  # each kept image's place among all images run
    layers: dict[str, LayerPatches]


@dataclass(frozen=True)
class TopPatch:
    """One of a channel's best images: its rank, the activation, the unit and its window."""

    rank: int
    activation: float
    stored: int  # row of PatchStore.images
    row: int
    col: int
    window: Window


def channel_footprint(
    manifest: Manifest, layer: str, channel: int
) -> tuple[Footprint, ChannelPatches]:
    """The layer's footprint and the patches entry; NotFound or BadInput if there are none."""
    row = manifest.layer(layer)
    if row is None:
        raise NotFound(f"unknown layer {layer}; valid layers: {', '.join(manifest.layer_names)}")
    if row.type != "conv":
        convs = [r.name for r in manifest.layers if r.type == "conv"]
        raise BadInput(f"only conv layers have channel patches ({', '.join(convs)}), not {layer}")
    entry = manifest.channel_patches
    if entry is None:
        raise NotFound(
            "this export has no channel patches (it predates them or used --patch-images 0); "
            "re-export the model with `alexnet export` to add them"
        )
    if layer not in entry.layers:
        raise NotFound(f"this export has no channel patches for {layer}; re-export the model")
    if channel >= row.channels:
        raise NotFound(f"{layer} has channels 0..{row.channels - 1}, not {channel}")
    return layer_footprint(manifest.layers, layer), entry


def top_patches(
    store: PatchStore, footprint: Footprint, layer: str, channel: int
) -> list[TopPatch]:
    """A channel's patches, best first (fewer than K when it fired on fewer images)."""
    found = store.layers[layer]
    patches = []
    for rank, stored in enumerate(found.image[channel].tolist(), start=1):
        if stored < 0:
            break
        row, col = int(found.row[channel, rank - 1]), int(found.col[channel, rank - 1])
        activation = float(found.activation[channel, rank - 1])
        window = Window.of_unit(footprint, row, col)
        patches.append(TopPatch(rank, activation, stored, row, col, window))
    return patches


# The store last read, by folder and checksum: it holds the export's images (about 40 MB at
# the default 256), so one is kept, and a re-exported file at the same path is read anew.
_stores: dict[tuple[Path, str], PatchStore] = {}
_load_lock = threading.Lock()  # two first requests must not read the file twice


async def patch_store(artifacts: ModelArtifacts) -> PatchStore:
    """The artifacts' patch store, read on first use off the event loop."""
    return await asyncio.to_thread(_cached_store, artifacts)


def _cached_store(artifacts: ModelArtifacts) -> PatchStore:
    entry = artifacts.manifest.channel_patches
    assert entry is not None  # channel_footprint said so
    key = (artifacts.folder, entry.sha256)
    with _load_lock:
        if key not in _stores:
            try:
                store = load_patch_store(artifacts.folder, artifacts.manifest)
            except ArtifactError as exc:
                raise PatchesUnreadable(str(exc)) from None
            _stores.clear()
            _stores[key] = store
        return _stores[key]


def load_patch_store(folder: Path, manifest: Manifest) -> PatchStore:
    """Read channel_patches.npz; ArtifactError (one line) if it does not fit the manifest."""
    entry = manifest.channel_patches
    if entry is None:
        raise ArtifactError("the manifest lists no channel patches")
    path = folder / entry.path
    try:
        with np.load(path, allow_pickle=False) as npz:
            store = PatchStore(
                images=npz["images"],
                names=[str(name) for name in npz["image_names"]],
                numbers=npz["image_numbers"],
                layers={
                    name: LayerPatches(
                        activation=npz[f"{name}.activation"],
                        image=npz[f"{name}.image"],
                        row=npz[f"{name}.row"],
                        col=npz[f"{name}.col"],
                        firing=npz[f"{name}.firing"],
                    )
                    for name in entry.layers
                },
            )
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise ArtifactError(f"{path} is unreadable ({exc}); re-export the model") from None
    problem = _mismatch(store, entry, manifest)
    if problem:
        raise ArtifactError(f"{path} does not match the manifest: {problem}; re-export the model")
    return store


def _mismatch(store: PatchStore, entry: ChannelPatches, manifest: Manifest) -> str | None:
    """What in the store disagrees with the manifest, or None."""
    crop = manifest.preprocess.crop
    kept = entry.images_kept
    if store.images.shape != (kept, crop, crop, 3) or store.images.dtype != np.uint8:
        return f"images {store.images.shape}, expected ({kept}, {crop}, {crop}, 3) uint8"
    if len(store.names) != kept or store.numbers.shape != (kept,):
        return "image names or numbers do not match the images"
    for name, patches in store.layers.items():
        layer = manifest.layer(name)
        assert layer is not None  # the manifest's validator checked the names
        channels, rows, cols = layer.output_shape
        shape = (channels, entry.top_k)
        parts = (patches.activation, patches.image, patches.row, patches.col)
        if any(part.shape != shape for part in parts) or patches.firing.shape != (channels,):
            return f"{name}'s arrays are not {list(shape)}"
        used = patches.image >= 0
        if patches.image.max(initial=-1) >= kept or patches.image.min(initial=0) < -1:
            return f"{name} refers to images that are not stored"
        if np.any(patches.row[used] >= rows) or np.any(patches.col[used] >= cols):
            return f"{name} has units outside its {rows}x{cols} maps"
        if np.any(patches.row[used] < 0) or np.any(patches.col[used] < 0):
            return f"{name} has negative units"
    return None
