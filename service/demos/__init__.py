"""The lecture's two properties, run on the service's own model and numerics engines.

What POST /v1/demo/equivariance and /v1/demo/pooling do once the router has read the
form (service/routers/demos.py); the answers' fields are service/demo_models.py's.

- equivariance: shift the input, compare the layer's (or a kernel's) map with the original
  moved by whole units
- invariance: shift the map a pooling layer reads, count the outputs max and average pooling keep
- layers: which layer of the model a demonstration runs on (defaults, 400s naming valid ones)
- figures: the PNG answers
- offload: a request's numpy work on the decode pool, off the event loop
"""

from service.demos.equivariance import EquivarianceRun, kernel_equivariance, model_equivariance
from service.demos.figures import equivariance_png, pooling_png
from service.demos.invariance import model_pooling, pooling
from service.demos.layers import (
    PoolLayer,
    check_model_layer,
    first_pool_layer,
    first_spatial_layer,
    pool_layer,
)

__all__ = [
    "EquivarianceRun",
    "PoolLayer",
    "check_model_layer",
    "equivariance_png",
    "first_pool_layer",
    "first_spatial_layer",
    "kernel_equivariance",
    "model_equivariance",
    "model_pooling",
    "pool_layer",
    "pooling",
    "pooling_png",
]
