"""Which layer of the model a demonstration runs on: the defaults, and 400s naming the valid ones.

Both demonstrations read the request's `layer` field against the manifest's layer table
before anything is decoded or run, so that a typo costs nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from core.manifest import Layer
from service.errors import BadInput
from service.numerics.shifts import layer_footprint, spatial_layers
from service.state import ServiceState


@dataclass(frozen=True)
class PoolLayer:
    """A max-pooling layer of the model and the layer whose map it reads."""

    name: str
    input_layer: str
    jump: int  # image pixels per unit of the map it reads
    size: int
    stride: int


def first_spatial_layer(state: ServiceState) -> str:
    """The default layer of the equivariance demonstration: the network's first (conv1)."""
    return spatial_layers(state.artifacts.manifest.layers)[0]


def check_model_layer(state: ServiceState, name: str) -> None:
    """400, naming the valid layers, unless `name` is a layer of the model with a map."""
    layer_footprint(state.artifacts.manifest.layers, name)


def max_pool_layers(layers: Sequence[Layer]) -> list[str]:
    """The model's max-pooling layers, in order."""
    return [layer.name for layer in layers if layer.type == "maxpool"]


def first_pool_layer(state: ServiceState) -> str:
    """The default layer of the pooling demonstration: the first max pool (pool1)."""
    pools = max_pool_layers(state.artifacts.manifest.layers)
    if not pools:
        raise BadInput("the model has no max-pooling layer; pool the image with size instead")
    return pools[0]


def pool_layer(state: ServiceState, name: str) -> PoolLayer:
    """The model's max-pooling layer called `name`; 400, naming the valid ones, otherwise."""
    layers = state.artifacts.manifest.layers
    pools = max_pool_layers(layers)
    index = next((i for i, layer in enumerate(layers) if layer.name == name), None)
    if index is None or layers[index].type != "maxpool":
        what = "unknown layer" if index is None else "not a max-pooling layer:"
        raise BadInput(f"{what} {name}; the model's max-pooling layers: {', '.join(pools)}")
    row = layers[index]
    if index == 0 or row.padding or layers[index - 1].type == "fc":
        raise BadInput(f"{name} does not pool a layer's map without padding; try {pools[0]}")
    before = layers[index - 1]
    return PoolLayer(name, before.name, before.jump, row.kernel, row.stride)
