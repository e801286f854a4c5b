"""The v2 tensor codec against tritonclient's own request encoder and response decoder."""

from __future__ import annotations

import base64
import gzip
import json
import struct
import time
import zlib
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from service.errors import BadInput, TooLarge
from service.v2.codec import (
    UnsupportedEncoding,
    classify,
    decompress,
    encode_infer_response,
    parse_infer_request,
)

LIMIT = 1_000_000


def _request(inputs: list[Any], outputs: list[Any] | None = None, **kw: Any) -> Any:
    """What tritonclient would send: (body, header length or None)."""
    return triton.InferenceServerClient.generate_request_body(inputs, outputs, **kw)


def _input(name: str, array: np.ndarray, datatype: str, binary: bool) -> triton.InferInput:
    tensor = triton.InferInput(name, list(array.shape), datatype)
    tensor.set_data_from_numpy(array, binary_data=binary)
    return tensor


@pytest.mark.parametrize("binary", [True, False])
def test_fp32_input_round_trips_from_tritonclient(binary: bool) -> None:
    array = np.random.default_rng(0).standard_normal((2, 3, 5, 4)).astype(np.float32)
    body, length = _request([_input("input", array, "FP32", binary)], request_id="r-7")
    assert (length is not None) == binary
    parsed = parse_infer_request(body, length, max_elements=LIMIT)
    assert parsed.id == "r-7"
    (tensor,) = parsed.inputs
    assert (tensor.name, tensor.datatype) == ("input", "FP32")
    assert tensor.data.dtype == np.float32
    np.testing.assert_array_equal(tensor.data, array)  # exact: no precision lost either way
    assert parsed.outputs is None
    assert parsed.binary_output is True  # tritonclient asks binary when it names no output


@settings(max_examples=40, deadline=None)
@given(
    st.sampled_from(
        [
            ("INT32", np.int32),
            ("UINT8", np.uint8),
            ("FP64", np.float64),
            ("FP16", np.float16),
            ("INT64", np.int64),
            ("BOOL", np.bool_),
        ]
    ),
    hnp.array_shapes(min_dims=1, max_dims=3, min_side=0, max_side=4),
    st.booleans(),
    st.integers(0, 2**32 - 1),
)
def test_every_datatype_round_trips(
    kind: tuple[str, Any], shape: tuple[int, ...], binary: bool, seed: int
) -> None:
    datatype, dtype = kind
    rng = np.random.default_rng(seed)
    array = (rng.standard_normal(shape) * 50).astype(dtype)
    body, length = _request([_input("x", array, datatype, binary)])
    (tensor,) = parse_infer_request(body, length, max_elements=LIMIT).inputs
    assert tensor.datatype == datatype
    assert tensor.data.shape == shape
    np.testing.assert_array_equal(tensor.data, array)


def test_bytes_input_binary_and_base64_json() -> None:
    blobs = np.array([b"\xff\xd8 not utf-8 \x00", b"", b"abc"], dtype=object)
    body, length = _request([_input("input", blobs, "BYTES", True)])
    (tensor,) = parse_infer_request(body, length, max_elements=LIMIT).inputs
    assert tensor.data.tolist() == blobs.tolist()
    header = {
        "inputs": [
            {
                "name": "input",
                "datatype": "BYTES",
                "shape": [3, 1],
                "data": [base64.b64encode(b).decode() for b in blobs],
            }
        ]
    }
    (tensor,) = parse_infer_request(json.dumps(header).encode(), None, max_elements=LIMIT).inputs
    assert tensor.data.shape == (3, 1)
    assert tensor.data.ravel().tolist() == blobs.tolist()


def test_nested_json_data_is_row_major() -> None:
    header = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [2, 2], "data": [[1, 2.5], [3, 4]]}]
    }
    (tensor,) = parse_infer_request(json.dumps(header).encode(), None, max_elements=LIMIT).inputs
    np.testing.assert_array_equal(tensor.data, np.array([[1, 2.5], [3, 4]], np.float32))


def test_requested_outputs_take_their_own_or_the_request_default() -> None:
    array = np.zeros((1, 2), np.float32)
    outputs = [
        triton.InferRequestedOutput("logits", binary_data=True, class_count=3),
        triton.InferRequestedOutput("conv1", binary_data=False),
    ]
    body, length = _request([_input("input", array, "FP32", False)], outputs)
    parsed = parse_infer_request(body, length, max_elements=LIMIT)
    assert parsed.outputs is not None
    assert [(o.name, o.binary, o.classification) for o in parsed.outputs] == [
        ("logits", True, 3),
        ("conv1", False, 0),
    ]
    header = {
        "inputs": [{"name": "x", "datatype": "FP32", "shape": [1], "data": [1]}],
        "outputs": [{"name": "fc7"}],
        "parameters": {"binary_data_output": True},
    }
    parsed = parse_infer_request(json.dumps(header).encode(), None, max_elements=LIMIT)
    assert parsed.outputs is not None and parsed.outputs[0].binary is True


@pytest.mark.parametrize("binary", [True, False])
def test_response_decodes_with_tritonclient(binary: bool) -> None:
    rng = np.random.default_rng(1)
    logits = rng.standard_normal((2, 10)).astype(np.float32)
    conv = rng.standard_normal((2, 4, 3, 3)).astype(np.float32)
    classes = classify(logits, 2, [f"c{i}" for i in range(10)])
    header = {"model_name": "alexnet", "model_version": "1", "id": "abc"}
    body, length = encode_infer_response(
        header, [("logits", logits, binary), ("conv1", conv, not binary), ("fc8", classes, binary)]
    )
    assert length is not None  # one of the two float outputs is binary either way
    result = triton.InferenceServerClient.parse_response_body(body, header_length=length)
    np.testing.assert_array_equal(result.as_numpy("conv1"), conv)
    response = result.get_response()
    assert (response["model_name"], response["id"]) == ("alexnet", "abc")
    assert [o["name"] for o in response["outputs"]] == ["logits", "conv1", "fc8"]
    np.testing.assert_array_equal(result.as_numpy("logits"), logits)
    # tritonclient hands JSON BYTES back as str and binary ones as bytes.
    got = [e if isinstance(e, bytes) else e.encode() for e in result.as_numpy("fc8").ravel()]
    assert got == classes.ravel().tolist()


def test_all_json_response_has_no_header_length() -> None:
    logits = np.array([[0.5, -1.25]], np.float32)
    body, length = encode_infer_response({"model_name": "m"}, [("logits", logits, False)])
    assert length is None
    assert json.loads(body)["outputs"] == [
        {"name": "logits", "datatype": "FP32", "shape": [1, 2], "data": [0.5, -1.25]}
    ]


def test_classify_ranks_each_row() -> None:
    scores = np.array([[0.1, 3.0, -2.0, 3.0], [5.0, 1.0, 2.0, 0.0]], np.float32)
    out = classify(scores, 3, ["a", "b", "c", "d"])
    assert out.shape == (2, 3)
    assert out[0].tolist() == [b"3.000000:1:b", b"3.000000:3:d", b"0.100000:0:a"]
    assert out[1].tolist() == [b"5.000000:0:a", b"2.000000:2:c", b"1.000000:1:b"]
    assert classify(scores, 9, None)[1, 0] == b"5.000000:0"  # k clipped to the classes
    with pytest.raises(BadInput):
        classify(np.zeros((1, 2, 3), np.float32), 1, None)


def test_decompress_gzip_deflate_and_identity() -> None:
    data = b'{"inputs": []}' * 100
    assert decompress(gzip.compress(data), "gzip", LIMIT) == data
    assert decompress(zlib.compress(data), "deflate", LIMIT) == data
    assert decompress(gzip.compress(data) + gzip.compress(b"!"), "GZIP", LIMIT) == data + b"!"
    assert decompress(data, None, LIMIT) == data
    assert decompress(data, "identity", LIMIT) == data
    with pytest.raises(TooLarge):
        decompress(data, None, len(data) - 1)


def test_gzip_bomb_stops_at_the_limit() -> None:
    packer, zeros = zlib.compressobj(9, wbits=31), bytes(2**20)  # gzip framing
    bomb = b"".join(packer.compress(zeros) for _ in range(200)) + packer.flush()
    assert len(bomb) < 300_000  # 200 MiB of zeros
    assert len(gzip.decompress(bomb)) == 200 * 2**20
    started = time.perf_counter()
    with pytest.raises(TooLarge):
        decompress(bomb, "gzip", 2**20)  # inflates no more than the limit, so it is quick
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize(
    "body, encoding, error",
    [
        (gzip.compress(bytes(range(256)) * 4)[:-8], "gzip", BadInput),  # no trailer
        (b"not gzip at all", "gzip", BadInput),
        (b"{}", "br", UnsupportedEncoding),
    ],
)
def test_decompress_rejects(body: bytes, encoding: str, error: type[Exception]) -> None:
    with pytest.raises(error):
        decompress(body, encoding, LIMIT)


def _json(header: object) -> bytes:
    return json.dumps(header).encode()


FP32 = {"name": "input", "datatype": "FP32", "shape": [1, 3]}
BAD_REQUESTS: list[tuple[str, bytes, int | None]] = [
    ("malformed JSON", b'{"inputs": [', None),
    ("not an object", b"[1, 2]", None),
    ("no inputs", _json({"inputs": []}), None),
    ("unknown datatype", _json({"inputs": [{**FP32, "datatype": "FLOAT"}]}), None),
    ("negative shape", _json({"inputs": [{**FP32, "shape": [-1, 3], "data": [1]}]}), None),
    ("data size", _json({"inputs": [{**FP32, "data": [1, 2]}]}), None),
    ("strings as FP32", _json({"inputs": [{**FP32, "data": ["1", "2", "3"]}]}), None),
    (
        "floats as INT32",
        _json({"inputs": [{**FP32, "datatype": "INT32", "data": [1.5, 2, 3]}]}),
        None,
    ),
    ("out of UINT8", _json({"inputs": [{**FP32, "datatype": "UINT8", "data": [1, 2, 300]}]}), None),
    ("ragged", _json({"inputs": [{**FP32, "data": [[1, 2], [3]]}]}), None),
    ("no data", _json({"inputs": [FP32]}), None),
    (
        "bad base64",
        _json({"inputs": [{"name": "i", "datatype": "BYTES", "shape": [1], "data": ["%%%"]}]}),
        None,
    ),
    ("header longer than body", b"{}", 99),
    (
        "binary bigger than body",
        _json({"inputs": [{**FP32, "parameters": {"binary_data_size": 12}}]}) + bytes(8),
        None,
    ),
    (
        "binary size disagrees with shape",
        _json({"inputs": [{**FP32, "parameters": {"binary_data_size": 8}}]}) + bytes(8),
        None,
    ),
    (
        "bytes after the tensors",
        _json({"inputs": [{**FP32, "parameters": {"binary_data_size": 12}}]}) + bytes(16),
        None,
    ),
    (
        "truncated BYTES element",
        _json(
            {
                "inputs": [
                    {
                        "name": "i",
                        "datatype": "BYTES",
                        "shape": [1],
                        "parameters": {"binary_data_size": 6},
                    }
                ]
            }
        )
        + struct.pack("<I", 9)
        + b"ab",
        None,
    ),
]


@pytest.mark.parametrize("what, body, length", BAD_REQUESTS, ids=[b[0] for b in BAD_REQUESTS])
def test_malformed_requests_are_bad_input(what: str, body: bytes, length: int | None) -> None:
    if length is None and b"binary_data_size" in body:
        length = body.index(b"]}") + 2  # the JSON header ends where the binary part starts
    with pytest.raises(BadInput) as caught:
        parse_infer_request(body, length, max_elements=LIMIT)
    assert type(caught.value) is BadInput and caught.value.message


def test_too_many_elements_is_too_large_before_reading_data() -> None:
    header = {
        "inputs": [{"name": "input", "datatype": "FP32", "shape": [10**6, 10**6], "data": []}]
    }
    with pytest.raises(TooLarge):
        parse_infer_request(_json(header), None, max_elements=LIMIT)
