"""Max and average pooling of grey or per-channel images over valid windows (no padding).

The result has ((H - size) // stride + 1, (W - size) // stride + 1) entries per
channel, window (i, j) covering rows i*stride .. i*stride+size-1 and the same for
columns; stride defaults to size (non-overlapping windows). It runs as one ONNX
MaxPool or AveragePool node, cached per (op, size, stride) because those are
attributes: on a 1024x1024 RGB image that takes 1-3 ms, where numpy reductions
over sliding windows take 15-130 ms.
"""

from __future__ import annotations

import functools
from collections.abc import Hashable, Sequence
from typing import Literal

import numpy.typing as npt
from onnx import TensorProto, helper

from core.runtime import CPU
from service.numerics.convolution import FloatArray, as_image
from service.numerics.errors import InvalidArgument
from service.numerics.geometry import check_choice, check_positive
from service.numerics.sessions import SessionCache, serialised_model

PoolOp = Literal["max", "avg"]
POOL_OPS: tuple[PoolOp, ...] = ("max", "avg")
_ONNX_OPS = {"max": "MaxPool", "avg": "AveragePool"}


def _pool_graph(key: Hashable) -> bytes:
    """One pooling node for key = (op, size, stride); image sizes are dynamic."""
    assert isinstance(key, tuple)
    op, size, stride = key
    floats = TensorProto.FLOAT
    inputs = [helper.make_tensor_value_info("image", floats, ["N", 1, "H", "W"])]
    outputs = [helper.make_tensor_value_info("result", floats, ["N", 1, "OH", "OW"])]
    node = helper.make_node(
        _ONNX_OPS[op], ["image"], ["result"], kernel_shape=[size, size], strides=[stride, stride]
    )
    return serialised_model([node], inputs, outputs, f"{op}_pool_{size}_{stride}")


class PoolingEngine:
    """Pools images on onnxruntime; create once (e.g. at start-up) and share across threads."""

    def __init__(
        self, providers: Sequence[str] = (CPU,), *, intra_op_threads: int = 0, cache_size: int = 16
    ) -> None:
        self._sessions = SessionCache(
            _pool_graph, providers, intra_op_threads=intra_op_threads, capacity=cache_size
        )

    @property
    def providers(self) -> list[str]:
        """The execution providers the sessions ask for, best first."""
        return self._sessions.providers

    def pool(
        self, image: npt.ArrayLike, *, op: PoolOp = "max", size: int = 2, stride: int | None = None
    ) -> FloatArray:
        """The float32 result for a (H, W) or (C, H, W) image, in the image's layout."""
        check_choice("op", op, POOL_OPS)
        check_positive("size", size)
        stride = size if stride is None else stride
        check_positive("stride", stride)
        channels, grey = as_image(image)
        rows, cols = channels.shape[1:]
        if size > rows or size > cols:
            raise InvalidArgument(
                f"the {size}x{size} window does not fit in the {rows}x{cols} image"
            )
        session = self._sessions.get((op, size, stride))
        result: FloatArray = session.run(["result"], {"image": channels[:, None]})[0][:, 0]
        assert result.shape[1:] == pool_shape((rows, cols), size, stride), result.shape
        return result[0] if grey else result


@functools.cache
def default_engine() -> PoolingEngine:
    """A CPU engine made on first use, for callers without one of their own."""
    return PoolingEngine([CPU])


def pool_shape(
    image_shape: tuple[int, int],
    size: int,
    stride: int | None = None,
) -> tuple[int, int]:
    """(rows, cols) of the pooled result of a (rows, cols) image."""
    step = size if stride is None else stride
    return (image_shape[0] - size) // step + 1, (image_shape[1] - size) // step + 1


def pool(
    image: npt.ArrayLike,
    *,
    op: PoolOp = "max",
    size: int = 2,
    stride: int | None = None,
    engine: PoolingEngine | None = None,
) -> FloatArray:
    """`PoolingEngine.pool` on `engine`, or on the shared CPU engine."""
    return (engine or default_engine()).pool(image, op=op, size=size, stride=stride)
