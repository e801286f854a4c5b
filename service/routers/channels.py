"""GET /v1/channels/{layer}/{channel}/top(.png): what a conv channel looks for.

The image patches that activate the channel most among the images the export ran,
as OpenAI Microscope shows them for AlexNet: JSON with where each comes from, and a
PNG (a grid of all, one patch alone, or one image with the patch outlined). The
patches file is read on the first request, off the event loop, and kept.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from pydantic import BaseModel, Field

from service.channel_patches import (
    PatchStore,
    TopPatch,
    channel_footprint,
    patch_store,
    top_patches,
)
from service.errors import BadInput, NotFound
from service.patch_pictures import patches_png
from service.state import StateDep

router = APIRouter(prefix="/v1", tags=["inspect"])


class Unit(BaseModel):
    row: int = Field(description="row of the unit in the layer's feature map")
    col: int = Field(description="column of the unit in the layer's feature map")


class InputWindow(BaseModel):
    """A square of input pixels (of the preprocessed crop); it may reach past the edges."""

    top: int = Field(description="first row; negative where the window starts above the crop")
    left: int = Field(description="first column; negative where it starts left of the crop")
    size: int = Field(description="side in pixels: the layer's receptive field")


class InputBox(BaseModel):
    """Rows top..bottom-1 and columns left..right-1 of the preprocessed crop."""

    top: int = Field(description="first row")
    left: int = Field(description="first column")
    bottom: int = Field(description="one past the last row")
    right: int = Field(description="one past the last column")


class Patch(BaseModel):
    rank: int = Field(description="1 for the image on which the channel responds most")
    activation: float = Field(
        description="the unit's activation (after ReLU): the channel's largest in that image"
    )
    image: int = Field(description="the image's number among those the export ran")
    image_name: str = Field(description="a file's path in the export's --data folder, or a shape")
    unit: Unit = Field(description="where in the feature map the channel fired most")
    window: InputWindow = Field(description="the unit's receptive field in the input crop")
    inside: InputBox = Field(
        description="the part of the window inside the crop (the rest is grey)"
    )


class ChannelTop(BaseModel):
    model: str = Field(description="the model's name")
    layer: str = Field(description="the conv layer asked for")
    channel: int = Field(description="the channel asked for")
    channels: int = Field(description="channels of the layer")
    receptive_field: int = Field(description="side of the input square one unit sees")
    jump: int = Field(description="input pixels between neighbouring units")
    input_size: int = Field(description="side of the preprocessed crop the windows lie in")
    images: int = Field(description="images the export ran to find the patches")
    source: str = Field(description="where those images came from")
    firing_images: int = Field(description="of them, how many made the channel fire anywhere")
    patches: list[Patch] = Field(
        description="best first; fewer than top_k when the channel fired on fewer images"
    )
    top_k: int = Field(description="patches kept per channel at most")
    png: str = Field(description="the grid of these patches; ?rank=N: one patch; &context=true")


LayerName = Annotated[str, PathParam(description="a conv layer, e.g. conv3")]
Channel = Annotated[int, PathParam(ge=0, description="a channel of the layer, from 0")]


def _as_patch(patch: TopPatch, store: PatchStore, side: int) -> Patch:
    window = patch.window
    box = window.inside(side, side)
    assert box is not None  # every unit sees part of the image
    return Patch(
        rank=patch.rank,
        activation=patch.activation,
        image=int(store.numbers[patch.stored]),
        image_name=store.names[patch.stored],
        unit=Unit(row=patch.row, col=patch.col),
        window=InputWindow(top=window.top, left=window.left, size=window.size),
        inside=InputBox(top=box.top, left=box.left, bottom=box.bottom, right=box.right),
    )


@router.get("/channels/{layer}/{channel}/top", response_model=ChannelTop)
async def channel_top(state: StateDep, layer: LayerName, channel: Channel) -> ChannelTop:
    """The image patches that activate a conv channel most: what does conv3 channel 17 look for?"""
    artifacts = state.artifacts
    manifest = artifacts.manifest
    footprint, entry = channel_footprint(manifest, layer, channel)
    store = await patch_store(artifacts)
    side = manifest.preprocess.crop
    return ChannelTop(
        model=manifest.name,
        layer=layer,
        channel=channel,
        channels=len(store.layers[layer].firing),
        receptive_field=footprint.size,
        jump=footprint.jump,
        input_size=side,
        images=entry.images,
        source=entry.source,
        firing_images=int(store.layers[layer].firing[channel]),
        top_k=entry.top_k,
        patches=[
            _as_patch(patch, store, side) for patch in top_patches(store, footprint, layer, channel)
        ],
        png=f"/v1/channels/{layer}/{channel}/top.png",
    )


@router.get(
    "/channels/{layer}/{channel}/top.png",
    response_class=Response,
    responses={200: {"content": {"image/png": {}}}},
)
async def channel_top_png(
    state: StateDep,
    layer: LayerName,
    channel: Channel,
    rank: Annotated[
        int | None, Query(ge=1, description="one patch alone (1: the best), at its own size")
    ] = None,
    context: Annotated[
        bool, Query(description="with rank: the whole input crop, the patch's window outlined")
    ] = False,
) -> Response:
    """The channel's top patches as one PNG: a grid labelled rank: activation, or one patch."""
    artifacts = state.artifacts
    footprint, entry = channel_footprint(artifacts.manifest, layer, channel)
    if context and rank is None:
        raise BadInput("context=true draws one patch's image: give its rank too")
    store = await patch_store(artifacts)
    patches = top_patches(store, footprint, layer, channel)
    if not patches:
        raise NotFound(
            f"{layer} channel {channel} fired on none of the {entry.images} images the export "
            "ran: it has no patches"
        )
    if rank is not None and rank > len(patches):
        raise NotFound(f"{layer} channel {channel} has {len(patches)} patches, not {rank}")
    png = await asyncio.to_thread(patches_png, store, patches, rank, context)
    return Response(png, media_type="image/png")
