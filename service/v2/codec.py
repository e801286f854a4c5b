"""Tensors of the Open Inference Protocol (KServe v2): JSON and binary forms, both ways.

Pure functions with no HTTP in them. The binary tensor extension: the first
`Inference-Header-Content-Length` bytes of a body are the JSON header, and each
tensor whose parameters carry `binary_data_size` takes that many bytes of what
follows, in tensor order. A BYTES element is a 4-byte little-endian length and
its bytes; in JSON a BYTES element is a base64 string (encoded images are not
UTF-8 text). Every malformed request raises BadInput, every oversized one TooLarge.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydantic import ValidationError

from core.errors import one_line
from service.errors import BadInput, ServiceError, TooLarge
from service.v2.schema import InferRequestHeader, InputSpec

# Fixed-size datatypes, little-endian on the wire; BYTES is handled on its own.
_CODES = (
    "BOOL:? UINT8:u1 UINT16:u2 UINT32:u4 UINT64:u8 INT8:i1 INT16:i2 INT32:i4 INT64:i8 "
    "FP16:f2 FP32:f4 FP64:f8"
)
DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code).newbyteorder("<") for name, code in (p.split(":") for p in _CODES.split())
}
# Which kinds of JSON numbers each datatype takes (an int is a fine float, not vice versa).
_JSON_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}  # 31: gzip framing; 15: zlib framing


class UnsupportedEncoding(ServiceError):
    """The body's Content-Encoding is neither gzip nor deflate."""

    status, code = 415, "unsupported_media_type"


@dataclass(frozen=True)
class InputTensor:
    """One decoded input: `data` has the request's shape (an object array of bytes for BYTES)."""

    name: str
    datatype: str
    data: np.ndarray


@dataclass(frozen=True)
class RequestedOutput:
    """An output the client named, in binary or JSON form, maybe as top-k classes."""

    name: str
    binary: bool
    classification: int = 0


@dataclass(frozen=True)
class InferRequest:
    """A parsed inference request; `outputs` is None when the client named none."""

    id: str | None
    inputs: list[InputTensor]
    outputs: list[RequestedOutput] | None
    binary_output: bool


def decompress(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body decoded per Content-Encoding; TooLarge as soon as it would pass `limit`."""
    name = (encoding or "identity").strip().lower()
    if name in ("", "identity"):
        if len(body) > limit:
            raise TooLarge(f"the request body is larger than {limit} bytes")
        return body
    if name not in _WBITS:
        raise UnsupportedEncoding(
            f"Content-Encoding {encoding!r} is not supported; use gzip or deflate"
        )
    out: list[bytes] = []
    size, data = 0, body
    try:
        while data:  # gzip allows several members one after another
            stream = zlib.decompressobj(_WBITS[name])
            # max_length stops inflating at the limit, so a small bomb cannot take memory.
            chunk = stream.decompress(data, limit + 1 - size)
            size += len(chunk)
            out.append(chunk)
            if size > limit:
                raise TooLarge(f"the decompressed request body is larger than {limit} bytes")
            if not stream.eof:
                raise BadInput(f"the {name} request body is truncated")
            data = stream.unused_data if name != "deflate" else b""
    except zlib.error as exc:
        raise BadInput(f"the request body is not valid {name}: {exc}") from None
    return b"".join(out)


def parse_infer_request(
    body: bytes, header_length: int | None, *, max_elements: int
) -> InferRequest:
    """Split, validate and decode a request body: JSON header plus optional binary tensors."""
    if header_length is None:
        header_length = len(body)
    if not 0 <= header_length <= len(body):
        raise BadInput(
            f"Inference-Header-Content-Length is {header_length}, but the body "
            f"has {len(body)} bytes"
        )
    try:
        header = InferRequestHeader.model_validate_json(body[:header_length])
    except ValidationError as exc:
        raise BadInput(f"the request is not a valid inference request: {one_line(exc)}") from None
    binary = memoryview(body)[header_length:]
    offset, tensors = 0, []
    for spec in header.inputs:
        tensor, offset = _decode_input(spec, binary, offset, max_elements)
        tensors.append(tensor)
    if offset != len(binary):
        raise BadInput(
            f"the body has {len(binary) - offset} bytes beyond the header and the "
            "binary_data_size of its inputs"
        )
    binary_output = header.parameters.binary_data_output
    outputs = None
    if header.outputs:  # an empty list asks for the default outputs, as a missing one does
        outputs = [
            RequestedOutput(
                output.name,
                binary_output
                if output.parameters.binary_data is None
                else output.parameters.binary_data,
                output.parameters.classification,
            )
            for output in header.outputs
        ]
    return InferRequest(header.id, tensors, outputs, binary_output)


def _decode_input(
    spec: InputSpec, binary: memoryview, offset: int, max_elements: int
) -> tuple[InputTensor, int]:
    name, datatype = spec.name, spec.datatype
    count = math.prod(spec.shape)
    if count > max_elements:
        raise TooLarge(f"input '{name}' has {count} elements; the limit is {max_elements}")
    size = spec.parameters.binary_data_size
    if size is not None:
        if offset + size > len(binary):
            raise BadInput(
                f"input '{name}': binary_data_size is {size}, but only "
                f"{len(binary) - offset} bytes follow the header"
            )
        raw = binary[offset : offset + size]
        data = (
            _bytes_from_binary(raw, count, name)
            if datatype == "BYTES"
            else _numbers_from_binary(raw, datatype, count, name)
        )
        return InputTensor(name, datatype, data.reshape(spec.shape)), offset + size
    if spec.data is None:
        raise BadInput(f"input '{name}' has neither 'data' nor binary_data_size")
    data = (
        _bytes_from_json(spec.data, count, name)
        if datatype == "BYTES"
        else _numbers_from_json(spec.data, datatype, count, name)
    )
    return InputTensor(name, datatype, data.reshape(spec.shape)), offset


def _numbers_from_binary(raw: memoryview, datatype: str, count: int, name: str) -> np.ndarray:
    dtype = DTYPES[datatype]
    if len(raw) != count * dtype.itemsize:
        raise BadInput(
            f"input '{name}': its shape holds {count} {datatype} elements "
            f"({count * dtype.itemsize} bytes), but binary_data_size is {len(raw)}"
        )
    return np.frombuffer(raw, dtype=dtype).astype(dtype.newbyteorder("="), copy=False)


def _numbers_from_json(data: object, datatype: str, count: int, name: str) -> np.ndarray:
    dtype = DTYPES[datatype].newbyteorder("=")
    try:
        array = np.asarray(data).ravel()  # flat or nested row-major lists alike
    except (ValueError, TypeError):
        raise BadInput(f"input '{name}': 'data' is not a regular list of numbers") from None
    if array.size != count:
        raise BadInput(f"input '{name}': its shape holds {count} elements, 'data' has {array.size}")
    if count and array.dtype.kind not in _JSON_KINDS[dtype.kind]:
        raise BadInput(f"input '{name}': 'data' holds values that are not {datatype}")
    if count and dtype.kind == "f" and not np.isfinite(array.astype(np.float64)).all():
        raise BadInput(f"input '{name}': 'data' holds NaN or infinity")
    if count and dtype.kind in "iu":
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise BadInput(f"input '{name}': values out of the range of {datatype}")
    return array.astype(dtype)


def _bytes_from_binary(raw: memoryview, count: int, name: str) -> np.ndarray:
    elements, at = np.empty(count, dtype=object), 0
    for index in range(count):
        if at + 4 > len(raw):
            raise BadInput(
                f"input '{name}': binary data ends after {index} of {count} BYTES elements"
            )
        (length,) = struct.unpack_from("<I", raw, at)
        if at + 4 + length > len(raw):
            raise BadInput(
                f"input '{name}': BYTES element {index} claims {length} bytes, "
                f"only {len(raw) - at - 4} remain"
            )
        elements[index] = bytes(raw[at + 4 : at + 4 + length])
        at += 4 + length
    if at != len(raw):
        raise BadInput(
            f"input '{name}': {len(raw) - at} bytes are left after its {count} BYTES elements"
        )
    return elements


def _bytes_from_json(data: object, count: int, name: str) -> np.ndarray:
    flat: list[object] = []
    stack = [data]
    while stack:  # flatten nested lists in row-major order
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(reversed(item))
        else:
            flat.append(item)
    if len(flat) != count:
        raise BadInput(f"input '{name}': its shape holds {count} elements, 'data' has {len(flat)}")
    elements = np.empty(count, dtype=object)
    for index, item in enumerate(flat):
        if not isinstance(item, str):
            raise BadInput(f"input '{name}': BYTES elements must be base64 strings in JSON")
        try:
            elements[index] = base64.b64decode(item, validate=True)
        except binascii.Error:
            raise BadInput(f"input '{name}': element {index} is not valid base64") from None
    return elements


# --- responses --------------------------------------------------------------------------


def classify(array: np.ndarray, count: int, labels: Sequence[str] | None) -> np.ndarray:
    """The classification extension: each row's top `count` as b"value:index[:label]"."""
    if array.ndim != 2:
        raise BadInput(
            f"classification needs an output of shape [N, classes], not {list(array.shape)}"
        )
    count = min(count, array.shape[1])
    top = np.argsort(-array, axis=1, kind="stable")[:, :count]
    result = np.empty(top.shape, dtype=object)
    for row, indices in enumerate(top):
        for column, index in enumerate(indices):
            label = f":{labels[index]}" if labels else ""
            result[row, column] = f"{array[row, index]:f}:{index}{label}".encode()
    return result


def datatype_of(array: np.ndarray) -> str:
    """The v2 datatype name of a numpy array."""
    if array.dtype == object:
        return "BYTES"
    for name, dtype in DTYPES.items():
        if dtype.newbyteorder("=") == array.dtype:
            return name
    raise TypeError(f"no v2 datatype for {array.dtype}")


def encode_tensor(name: str, array: np.ndarray, binary: bool) -> tuple[dict[str, Any], bytes]:
    """An output's JSON entry and its raw bytes (empty when the data is inline JSON)."""
    datatype = datatype_of(array)
    entry: dict[str, Any] = {"name": name, "datatype": datatype, "shape": list(array.shape)}
    if not binary:
        entry["data"] = (
            [item.decode("utf-8", "replace") for item in array.ravel()]
            if datatype == "BYTES"
            else array.ravel().tolist()
        )
        return entry, b""
    if datatype == "BYTES":
        raw = b"".join(struct.pack("<I", len(item)) + item for item in array.ravel())
    else:
        raw = np.ascontiguousarray(array, dtype=DTYPES[datatype]).tobytes()
    entry["parameters"] = {"binary_data_size": len(raw)}
    return entry, raw


def encode_infer_response(
    header: dict[str, Any], outputs: Sequence[tuple[str, np.ndarray, bool]]
) -> tuple[bytes, int | None]:
    """The response body and, when any output is binary, the JSON header's length."""
    entries, blobs = [], []
    for name, array, binary in outputs:
        entry, raw = encode_tensor(name, array, binary)
        entries.append(entry)
        blobs.append(raw)
    try:  # JSON has no NaN or Infinity: an input that overflows the model cannot be answered
        head = json.dumps(
            {**header, "outputs": entries}, separators=(",", ":"), allow_nan=False
        ).encode()
    except ValueError:
        raise BadInput(
            "the outputs are not finite (NaN or infinity) for this input; its values overflow "
            "float32 in the model: send preprocessed pixels, or ask for binary outputs"
        ) from None
    if not any(binary for _, _, binary in outputs):
        return head, None
    return head + b"".join(blobs), len(head)
