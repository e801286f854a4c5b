"""KServe v1 `:predict` bodies: `{"instances": [...], "top_k"?}`, parsed without HTTP.

Each instance is one image, in one of the forms KServe's own image samples send:

- `{"image_bytes": {"b64": "..."}}` (TensorFlow Serving's), or `{"b64": "..."}`;
- `{"image": {"b64": "..."}}` (KServe's image transformer sample);
- `{"data": "..."}` (TorchServe's v1 form: the base64 string itself);
- a nested list of numbers of shape [3, H, W], already preprocessed as the manifest
  says (TensorFlow's "row" form; what a transformer forwards to a predictor).

An object may carry `"key"` (a string or an integer), echoed in its prediction.
Anything else is refused (BadInput) with the index of the instance at fault.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from service.errors import BadInput, TooLarge

Key = str | int
IMAGE_FIELDS = ("image_bytes", "image", "data", "b64")
MAX_TOP_K = 1000  # as /v1/predict
DEFAULT_TOP_K = 5


@dataclass(frozen=True)
class Instance:
    """One instance: an encoded image or a preprocessed (3, H, W) float32 tensor."""

    key: Key | None
    image: bytes | None = None
    tensor: np.ndarray | None = None


@dataclass(frozen=True)
class PredictRequest:
    instances: list[Instance]
    top_k: int
    options: dict[str, Any]  # the other top-level fields `allowed` let through, unchecked


def parse_predict_request(
    body: bytes,
    *,
    input_shape: Sequence[int],
    max_instances: int,
    allowed: Sequence[str] = ("top_k",),
) -> PredictRequest:
    """The instances of a `:predict` (or `:explain`) body, each checked; BadInput or TooLarge
    otherwise. Top-level fields besides `instances` must be among `allowed`."""
    try:
        document = json.loads(body)
    except json.JSONDecodeError as exc:
        raise BadInput(f"the body is not valid JSON: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError):  # nested too deep, an integer of 4300 digits...
        raise BadInput("the body is not JSON this server can read") from None
    if not isinstance(document, dict) or "instances" not in document:
        raise BadInput('the body must be a JSON object {"instances": [...]}')
    unknown = [key for key in document if key not in ("instances", *allowed)]
    if unknown:
        known = ", ".join(("instances", *allowed))
        raise BadInput(f"unknown field {', '.join(map(repr, unknown))}; use {known}")
    instances = document["instances"]
    if not isinstance(instances, list) or not instances:
        raise BadInput("'instances' must be a non-empty list")
    if len(instances) > max_instances:
        raise TooLarge(f"{len(instances)} instances; the limit is {max_instances}")
    top_k = document.get("top_k", DEFAULT_TOP_K)
    if isinstance(top_k, bool) or not isinstance(top_k, int) or not 1 <= top_k <= MAX_TOP_K:
        raise BadInput(f"'top_k' must be an integer from 1 to {MAX_TOP_K}")
    parsed = [_instance(i, item, tuple(input_shape)) for i, item in enumerate(instances)]
    options = {key: value for key, value in document.items() if key not in ("instances", "top_k")}
    return PredictRequest(parsed, top_k, options)


def _instance(index: int, item: Any, shape: tuple[int, ...]) -> Instance:
    if isinstance(item, list):
        return Instance(None, tensor=_tensor(index, item, shape))
    if not isinstance(item, dict):
        raise BadInput(f"instance {index}: {_FORMS}")
    key = item.get("key")
    if key is not None and (isinstance(key, bool) or not isinstance(key, str | int)):
        raise BadInput(f"instance {index}: 'key' must be a string or an integer")
    fields = [name for name in IMAGE_FIELDS if name in item]
    extra = [name for name in item if name not in (*IMAGE_FIELDS, "key")]
    if len(fields) != 1 or extra:
        raise BadInput(f"instance {index}: {_FORMS}")
    value = item[fields[0]]
    if fields[0] in ("image_bytes", "image"):
        if not isinstance(value, dict) or list(value) != ["b64"]:
            raise BadInput(f'instance {index}: {fields[0]!r} must be {{"b64": "<base64>"}}')
        value = value["b64"]
    return Instance(key, image=_base64(index, value))


_FORMS = (
    'an instance is {"image_bytes": {"b64": ...}}, {"image": {"b64": ...}}, {"b64": ...}, '
    '{"data": "<base64>"} (each with an optional "key"), or a [3, H, W] list of numbers'
)


def _base64(index: int, value: Any) -> bytes:
    if not isinstance(value, str):
        raise BadInput(f"instance {index}: the image must be a base64 string")
    try:
        blob = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadInput(f"instance {index}: the image is not valid base64") from None
    if not blob:
        raise BadInput(f"instance {index}: the image is empty")
    return blob


def _tensor(index: int, item: list[Any], shape: tuple[int, ...]) -> np.ndarray:
    try:
        array = np.asarray(item)
    except (ValueError, TypeError):  # ragged: rows of different lengths
        raise BadInput(f"instance {index}: the tensor's rows differ in length") from None
    if array.dtype.kind not in "iuf":  # strings, booleans, integers past int64, mixed
        raise BadInput(f"instance {index}: the tensor must hold numbers only")
    if array.shape != shape:
        raise BadInput(
            f"instance {index}: a tensor must have shape {list(shape)}, not {list(array.shape)}"
        )
    with np.errstate(over="ignore", invalid="ignore"):  # out of range: caught just below
        tensor = array.astype(np.float32)
    if not np.isfinite(tensor).all():
        raise BadInput(f"instance {index}: the tensor must hold finite numbers in float32's range")
    return tensor
