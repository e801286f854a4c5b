"""The answers of /v1/demo/equivariance and /v1/demo/pooling, every field described for OpenAPI."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from service.numerics.invariance import Direction

Pair = list[int]


class Region(BaseModel):
    """The interior: units whose receptive field sees only image pixels in both inputs."""

    rows: Pair = Field(description="[first, last + 1) rows of the shifted input's map")
    cols: Pair = Field(description="[first, last + 1) columns of the shifted input's map")
    units: int = Field(description="units compared: rows x columns x channels")
    max_abs_difference: float = Field(
        description="max |shifted input's map - original map moved| over the interior"
    )
    differing_units: int = Field(description="interior units whose values differ at all")


class Border(BaseModel):
    """Units with a counterpart whose field reaches the moved-in zeros or the padding."""

    units: int = Field(description="units compared: positions x channels (0 without padding)")
    max_abs_difference: float | None = Field(
        description="max |difference| over them; null when there are none"
    )
    differing_units: int = Field(description="border units whose values differ")


class ShiftResult(BaseModel):
    """One input shift compared with the original map moved by whole units."""

    dx: int = Field(description="input shift in pixels, positive to the right")
    dy: int = Field(description="input shift in pixels, positive downwards")
    aligned: bool = Field(
        description="the jump divides both dx and dy, so the map must move by whole units"
    )
    map_dx: int = Field(description="map columns the original is moved by: dx / jump, rounded")
    map_dy: int = Field(description="map rows the original is moved by: dy / jump, rounded")
    exact: bool = Field(description="the interior is bit-for-bit equal (max |difference| is 0)")
    interior: Region = Field(description="units that see only image pixels in both inputs")
    border: Border = Field(description="units with a counterpart that see fill or padding")
    new_units: int = Field(
        description="units of the shifted input's map with no counterpart in the original "
        "(moved in from outside its frame): positions x channels"
    )
    max_abs_value: float = Field(description="largest |value| of the original map, for scale")


class Geometry(BaseModel):
    """How one unit of the map sees the input, [rows, cols] (from the manifest or the kernel)."""

    receptive_field: Pair = Field(description="input pixels one unit sees, [rows, cols]")
    jump: Pair = Field(description="input pixels between neighbouring units (total stride)")
    offset: Pair = Field(description="first input pixel of unit 0's field; < 0 under padding")


class EquivarianceResponse(BaseModel):
    """Translation equivariance measured on the model's layer or on a kernel of your own."""

    source: Literal["model", "kernel"] = Field(
        description="model: the network's layer on the preprocessed crop; kernel: your "
        "kernel on the image's grey pixels"
    )
    layer: str | None = Field(description="the model's layer (source model)")
    provider: str = Field(description="onnxruntime execution provider that computed the maps")
    input_shape: list[int] = Field(description="what was shifted: [3, crop, crop] or [rows, cols]")
    map_shape: list[int] = Field(description="the compared maps: [channels, rows, cols] or 2-D")
    geometry: Geometry = Field(description="receptive field, jump and offset of the map")
    requested: ShiftResult = Field(description="the shift asked for")
    contrast: ShiftResult | None = Field(
        description="the other kind of shift beside it: one pixel more along x when the "
        "requested shift is aligned, the nearest aligned shift when it is not; null when "
        "every shift is aligned (jump 1) or the neighbour leaves nothing to compare"
    )


class Unchanged(BaseModel):
    """How many compared values stayed exactly the same after the shift."""

    compared: int = Field(
        description="values compared (positions whose window sees no moved-in zeros) x channels"
    )
    unchanged: float = Field(description="fraction of them exactly equal before and after")
    zero: float = Field(
        description="fraction that is 0 before and after (dead or inactive units): unchanged "
        "under any operation"
    )
    unchanged_nonzero: float | None = Field(
        description="fraction unchanged among the rest, the telling number; null if all are 0"
    )


class PoolShiftResult(BaseModel):
    """One shift of the map: what stayed the same, without pooling and with each pooling."""

    shift: int = Field(description="steps shifted, 1..max_shift")
    dx: int = Field(description="map columns shifted (right)")
    dy: int = Field(description="map rows shifted (down)")
    map_itself: Unchanged = Field(description="the map's own values: the baseline")
    max_pool: Unchanged = Field(description="max pooling's outputs at the same positions")
    avg_pool: Unchanged = Field(description="average pooling's outputs: the contrast")


class PoolingResponse(BaseModel):
    """Approximate invariance of max pooling to small shifts of its input."""

    source: Literal["model", "image"] = Field(
        description="model: the model's pooling layer on the map it reads; image: a max "
        "pool of the image's grey pixels"
    )
    layer: str | None = Field(description="the model's pooling layer (source model)")
    input_layer: str | None = Field(description="the layer whose map the pool reads")
    provider: str = Field(description="onnxruntime execution provider that pooled")
    map_shape: list[int] = Field(description="the map that is shifted and pooled")
    size: int = Field(description="pooling window side")
    stride: int = Field(description="pooling stride")
    pixels_per_step: int = Field(
        description="image pixels one step of shift stands for: the jump of the pooled map "
        "(a conv1 unit is 4 pixels in the paper model), 1 for the image"
    )
    model_max_abs_difference: float | None = Field(
        description="max |the model's own pooling output - this max pool of its input|: 0 "
        "when the demonstration pools exactly as the network does; null for the image"
    )
    direction: Direction = Field(description="right, down or diagonal (both)")
    shifts: list[PoolShiftResult] = Field(description="one entry per shift, 1..max_shift")
