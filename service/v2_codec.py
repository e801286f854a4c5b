"""Tensors of the Open Inference Protocol (KServe v2): JSON and binary forms, both ways.

Pure functions with no HTTP in them; the /v2 router reads the raw body, hands it
here and sends back what comes out. The binary tensor extension: the first
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
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import BadInput, ServiceError, TooLarge

# Fixed-size datatypes, little-endian on the wire; BYTES is handled on its own.
_CODES = (
    "BOOL:? UINT8:u1 UINT16:u2 UINT32:u4 UINT64:u8 INT8:i1 INT16:i2 INT32:i4 INT64:i8 "
    "FP16:f2 FP32:f4 FP64:f8"
)
DTYPES: dict[str, np.dtype[Any]] = {
    name: np.dtype(code).newbyteorder("<") for name, code in (p.split(":") for p in _CODES.split())
}
DATATYPES = [*DTYPES, "BYTES"]
# Which kinds of JSON numbers each datatype takes (an int is a fine float, not vice versa).
_JSON_KINDS = {"b": "b", "u": "iu", "i": "iu", "f": "iuf"}
_WBITS = {"gzip": 31, "x-gzip": 31, "deflate": 15}  # 31: gzip framing; 15: zlib framing


class UnsupportedEncoding(ServiceError):
    """The body's Content-Encoding is neither gzip nor deflate."""

    status, code = 415, "unsupported_media_type"


@dataclass(frozen=True)
class InputTensor:
    """One decoded input: `data` has `shape` (an object array of bytes for BYTES)."""

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
    """Split, parse and check a request body: JSON header plus optional binary tensors."""
    if header_length is None:
        header_length = len(body)
    if not 0 <= header_length <= len(body):
        raise BadInput(
            f"Inference-Header-Content-Length is {header_length}, but the body "
            f"has {len(body)} bytes"
        )
    try:
        header = json.loads(body[:header_length], parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"the request is not valid JSON: {exc}") from None
    except RecursionError:  # nested deeper than Python's parser goes
        raise BadInput("the request is not valid JSON: nested far too deep") from None
    if not isinstance(header, dict):
        raise BadInput("the request must be a JSON object with 'inputs'")
    inputs = header.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadInput("the request has no 'inputs'; send a list of input tensors")
    binary = memoryview(body)[header_length:]
    offset, tensors = 0, []
    for spec in inputs:
        tensor, offset = _parse_input(spec, binary, offset, max_elements)
        tensors.append(tensor)
    if offset != len(binary):
        raise BadInput(
            f"the body has {len(binary) - offset} bytes beyond the header and the "
            "binary_data_size of its inputs"
        )
    parameters = _object(header.get("parameters"), "request parameters")
    binary_output = bool(parameters.get("binary_data_output", False))
    request_id = header.get("id")
    return InferRequest(
        id=None if request_id is None else str(request_id),
        inputs=tensors,
        outputs=_parse_outputs(header.get("outputs"), binary_output),
        binary_output=binary_output,
    )


def _object(value: object, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput(f"{what} must be a JSON object")
    return value


def _parse_outputs(outputs: object, binary_default: bool) -> list[RequestedOutput] | None:
    # An empty list asks for the default outputs, as a missing one does.
    if outputs is None or outputs == []:
        return None
    if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
        raise BadInput("'outputs' must be a list of objects with a 'name'")
    parsed = []
    for output in outputs:
        name, parameters = output.get("name"), _object(output.get("parameters"), "parameters")
        if not isinstance(name, str):
            raise BadInput("every requested output needs a 'name'")
        classes = parameters.get("classification", 0)
        if not isinstance(classes, int) or isinstance(classes, bool) or classes < 0:
            raise BadInput(f"output '{name}': 'classification' must be a count of classes")
        binary = bool(parameters.get("binary_data", binary_default))
        parsed.append(RequestedOutput(name, binary, classes))
    return parsed


def _parse_input(
    spec: object, binary: memoryview, offset: int, max_elements: int
) -> tuple[InputTensor, int]:
    if not isinstance(spec, dict) or not isinstance(spec.get("name"), str):
        raise BadInput("every input must be an object with a 'name'")
    name, datatype, shape = spec["name"], spec.get("datatype"), spec.get("shape")
    if datatype not in DATATYPES:
        raise BadInput(
            f"input '{name}': datatype {datatype!r} is not one of {', '.join(DATATYPES)}"
        )
    if not isinstance(shape, list) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape
    ):
        raise BadInput(f"input '{name}': 'shape' must be a list of non-negative integers")
    count = math.prod(shape)
    if count > max_elements:
        raise TooLarge(f"input '{name}' has {count} elements; the limit is {max_elements}")
    parameters = _object(spec.get("parameters"), f"input '{name}' parameters")
    if "shared_memory_region" in parameters:
        raise BadInput(f"input '{name}': shared memory is not supported over this server")
    size = parameters.get("binary_data_size")
    if size is not None:
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise BadInput(f"input '{name}': binary_data_size must be a non-negative integer")
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
        return InputTensor(name, datatype, data.reshape(shape)), offset + size
    if "data" not in spec:
        raise BadInput(f"input '{name}' has neither 'data' nor binary_data_size")
    data = (
        _bytes_from_json(spec["data"], count, name)
        if datatype == "BYTES"
        else _numbers_from_json(spec["data"], datatype, count, name)
    )
    return InputTensor(name, datatype, data.reshape(shape)), offset


def _reject_constant(name: str) -> float:
    raise BadInput(f"the request is not valid JSON: {name} is not a JSON number")


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
