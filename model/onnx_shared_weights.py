"""Let one ONNX file read its weights from inside another, so no weight is stored twice.

ONNX external data names a file, an offset and a length of raw little-endian bytes.
An initializer saved inline in an .onnx file is exactly such a run of bytes (the
TensorProto's `raw_data` field), so a second graph with the same weights (the
explain graph beside `alexnet.onnx`) can point at those bytes instead of carrying a
copy: the forward file stays as it is, self-contained, and the second file shrinks
to its nodes. Offsets are found by walking the protobuf wire format, and every
reference is checked byte for byte. Torch-free: onnx only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import onnx
from onnx.external_data_helper import set_external_data

# Field numbers in onnx.proto.
_MODEL_GRAPH, _GRAPH_INITIALIZER, _TENSOR_NAME, _TENSOR_RAW_DATA = 7, 5, 8, 9
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
# Smaller tensors (biases, scalars) are left inline: a reference costs about as much.
MIN_SHARED_BYTES = 1024


def initializer_offsets(path: Path) -> dict[str, tuple[int, int]]:
    """Per inline initializer of the model file, (offset, length) of its raw bytes in the file."""
    return _initializer_offsets(memoryview(path.read_bytes()))


def _initializer_offsets(data: memoryview) -> dict[str, tuple[int, int]]:
    offsets: dict[str, tuple[int, int]] = {}
    for number, start, length in _fields(data, 0, len(data)):
        if number != _MODEL_GRAPH:
            continue
        for field, begin, size in _fields(data, start, start + length):
            if field != _GRAPH_INITIALIZER:
                continue
            name, raw = None, None
            for key, at, count in _fields(data, begin, begin + size):
                if key == _TENSOR_NAME:
                    name = bytes(data[at : at + count]).decode()
                elif key == _TENSOR_RAW_DATA:
                    raw = (at, count)
            if name is not None and raw is not None:
                offsets[name] = raw
    return offsets


def refer_to_weights_in(model: onnx.ModelProto, weights_file: Path) -> onnx.ModelProto:
    """A copy of `model` whose initializers found byte-identical in `weights_file` point there.

    The reference is by file name, relative to the folder the model is saved in,
    so save the result beside `weights_file`.
    """
    data = memoryview(weights_file.read_bytes())
    offsets = _initializer_offsets(data)
    shared = onnx.ModelProto()
    shared.CopyFrom(model)
    for init in shared.graph.initializer:
        if init.name not in offsets or len(init.raw_data) < MIN_SHARED_BYTES:
            continue
        offset, length = offsets[init.name]
        if data[offset : offset + length] != init.raw_data:
            raise ValueError(f"{init.name} differs from the tensor of that name in {weights_file}")
        set_external_data(init, weights_file.name, offset, length)
        init.data_location = onnx.TensorProto.EXTERNAL
        init.ClearField("raw_data")
    return shared


def _fields(data: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(field number, payload offset, payload length) of each length-delimited field."""
    position = start
    while position < end:
        key, position = _varint(data, position)
        number, wire_type = key >> 3, key & 7
        if wire_type == _LENGTH_DELIMITED:
            length, position = _varint(data, position)
            yield number, position, length
            position += length
        elif wire_type == _VARINT:
            _, position = _varint(data, position)
        elif wire_type == _FIXED64:
            position += 8
        elif wire_type == _FIXED32:
            position += 4
        else:
            raise ValueError(f"unexpected protobuf wire type {wire_type} at byte {position}")


def _varint(data: memoryview, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
