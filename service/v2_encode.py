"""Responses of the Open Inference Protocol (KServe v2): output tensors, JSON or binary.

The counterpart of `service.v2_codec`, which parses requests: a binary output's
bytes follow the JSON header, whose length the router sends as
`Inference-Header-Content-Length`.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from typing import Any

import numpy as np

from service.errors import BadInput
from service.v2_codec import DTYPES


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
