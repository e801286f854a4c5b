"""/v1/demo/equivariance and /v1/demo/pooling on the real server, against independent references.

The model's maps are recomputed with onnxruntime run directly on the exported file
(the same preprocessing from core, the shift by numpy slicing), kernels with scipy,
pooling with numpy's sliding windows.

Why the interior is asserted bit-for-bit equal (0.0, not "close"): a unit of the
shifted input's map and its counterpart in the original are the same float32
products of the same weights and the same pixels. onnxruntime's CPU convolution
sums them the same way wherever the output sits, whatever the batch or thread
count (measured before writing this: every layer, batches of 1 to 5, 1 and 2
threads, shifts up to 32 pixels), so the float32 results are identical; the test
below also checks that on onnxruntime run directly. The servers here run the CPU
provider; another provider may round per position differently, which is why the
answer reports what it measures rather than assuming it.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import onnxruntime as ort
import pytest
from numpy.lib.stride_tricks import sliding_window_view
from PIL import Image
from scipy import signal

from core.manifest import Manifest, read_manifest
from core.preprocess import preprocess_bytes
from tests.service.test_metrics import scrape
from tests.support import RunningServer, encode, running_server

GREY = np.random.default_rng(5).integers(0, 256, (61, 70), dtype=np.uint8)
CELL = 165  # shift_comparison_png's cell for a 55x55 map (zoom 3)


@dataclass
class Reference:
    """The exported model run with onnxruntime directly, and its manifest."""

    session: ort.InferenceSession
    manifest: Manifest

    def maps(self, tensors: Sequence[np.ndarray], layer: str) -> list[np.ndarray]:
        (out,) = self.session.run([layer], {"input": np.stack(tensors)})
        return list(out)


@pytest.fixture(scope="module")
def reference(exported_artifacts: Path) -> Reference:
    session = ort.InferenceSession(
        str(exported_artifacts / "alexnet.onnx"), providers=["CPUExecutionProvider"]
    )
    return Reference(session, read_manifest(exported_artifacts))


@pytest.fixture(scope="module")
def cat(photo_arrays: dict[str, np.ndarray]) -> bytes:
    """PNG, not JPEG: the server's fast JPEG decoding would make other pixels than core's."""
    return encode(photo_arrays["chelsea"], "PNG")


def shifted(array: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Zeros moved in; dx, dy >= 0 here (the numerics' own tests cover the other signs)."""
    out = np.zeros_like(array)
    out[..., dy:, dx:] = array[..., : array.shape[-2] - dy, : array.shape[-1] - dx]
    return out


def post(server: RunningServer, path: str, image: bytes, **form: object) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/demo/{path}",
        files={"image": ("x.png", image)},
        data={k: str(v) for k, v in form.items()},
        timeout=120,
    )


def ok(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_conv1_shifts_exactly_for_shifts_of_whole_strides(
    server: RunningServer, reference: Reference, cat: bytes
) -> None:
    before = scrape(server.url)
    body = ok(post(server, "equivariance", cat, dx=8, dy=4))
    after = scrape(server.url)
    # One request, one batch of three images (original, shifted, contrast) via the batcher.
    assert after.value("alexnet_batch_size_count") - before.value("alexnet_batch_size_count") == 1
    assert after.value("alexnet_batch_size_sum") - before.value("alexnet_batch_size_sum") == 3

    assert body["source"] == "model" and body["layer"] == "conv1"
    assert body["map_shape"] == [96, 55, 55]
    assert body["geometry"] == {"receptive_field": [11, 11], "jump": [4, 4], "offset": [0, 0]}
    requested = body["requested"]
    assert requested["aligned"] and (requested["map_dx"], requested["map_dy"]) == (2, 1)
    # Unit (i, j) sees rows 4i..4i+10 and columns 4j..4j+10. Real pixels of the shifted
    # input: rows 4..226, columns 8..226, so rows 1..54 and columns 2..54.
    interior = requested["interior"]
    assert (interior["rows"], interior["cols"]) == ([1, 55], [2, 55])
    assert interior["units"] == 54 * 53 * 96
    assert requested["border"] == {"units": 0, "max_abs_difference": None, "differing_units": 0}
    assert requested["new_units"] == (55 * 55 - 54 * 53) * 96

    tensor = preprocess_bytes(cat, reference.manifest.preprocess)
    original, moved_input, one_more = reference.maps(
        [tensor, shifted(tensor, 8, 4), shifted(tensor, 9, 4)], "conv1"
    )
    assert np.array_equal(moved_input[:, 1:, 2:], original[:, :-1, :-2])  # onnxruntime agrees
    assert interior["max_abs_difference"] == 0.0 and interior["differing_units"] == 0
    assert requested["exact"] is True
    assert requested["max_abs_value"] == pytest.approx(float(np.abs(original).max()), rel=1e-6)

    # One pixel more: the map does not shift by any whole number of units.
    contrast = body["contrast"]
    assert (contrast["dx"], contrast["dy"], contrast["aligned"]) == (9, 4, False)
    assert contrast["interior"]["cols"] == [3, 55]  # column 8 is a moved-in zero
    expected = np.abs(
        one_more[:, 1:, 3:].astype(np.float64) - original[:, :-1, 1:-2].astype(np.float64)
    ).max()
    assert contrast["interior"]["max_abs_difference"] == pytest.approx(expected, rel=1e-6)
    assert contrast["interior"]["max_abs_difference"] > 0.1 * contrast["max_abs_value"]


def test_a_padded_layer_breaks_equivariance_at_its_border(
    server: RunningServer, reference: Reference, cat: bytes
) -> None:
    body = ok(post(server, "equivariance", cat, layer="conv2", dx=16, dy=8))
    requested = body["requested"]
    assert body["geometry"]["offset"] == [-16, -16]  # conv2's padding 2 at a jump of 8
    assert requested["interior"]["max_abs_difference"] == 0.0
    # Units with a counterpart (rows 1.., columns 2..) whose field reaches the zeros
    # moved in or the padding: there the frame does not move with the picture.
    tensor = preprocess_bytes(cat, reference.manifest.preprocess)
    original, moved_input = reference.maps([tensor, shifted(tensor, 16, 8)], "conv2")
    difference = np.abs(moved_input[:, 1:, 2:] - original[:, :-1, :-2])
    (r0, r1), (c0, c1) = requested["interior"]["rows"], requested["interior"]["cols"]
    border = np.ones(difference.shape[1:], bool)
    border[r0 - 1 : r1 - 1, c0 - 2 : c1 - 2] = False
    assert requested["border"]["units"] == int(border.sum()) * 256
    assert requested["border"]["max_abs_difference"] == pytest.approx(
        float(difference[:, border].max()), rel=1e-6
    )
    assert requested["border"]["max_abs_difference"] > 0
    assert float(difference[:, ~border].max()) == 0.0


def test_a_kernel_of_your_own_against_scipy(server: RunningServer) -> None:
    kernel = np.array([[1, 0, -1], [2, 0, -2], [1, 0, -1]], np.float64)  # sobel_x
    body = ok(
        post(
            server,
            "equivariance",
            encode(GREY, "PNG"),
            preset="sobel_x",
            padding="same",
            stride=2,
            dx=4,
            dy=2,
        )
    )
    assert body["source"] == "kernel" and body["layer"] is None
    assert body["input_shape"] == [61, 70] and body["map_shape"] == [31, 35]
    grey = GREY.astype(np.float64)
    maps = [
        signal.convolve2d(image, kernel, mode="same")[::2, ::2]
        for image in (grey, shifted(grey, 4, 2), shifted(grey, 5, 2))
    ]
    requested, contrast = body["requested"], body["contrast"]
    assert (requested["map_dx"], requested["map_dy"]) == (2, 1)
    assert requested["interior"]["max_abs_difference"] == 0.0
    # Integers: scipy's sums are exact, and so are the float32 ones; equal to the last bit.
    compared = np.abs(maps[1][1:, 2:] - maps[0][:-1, :-2])
    (r0, r1), (c0, c1) = requested["interior"]["rows"], requested["interior"]["cols"]
    assert compared[r0 - 1 : r1 - 1, c0 - 2 : c1 - 2].max() == 0.0
    assert requested["border"]["max_abs_difference"] == compared.max() > 0  # the padding
    assert not contrast["aligned"] and (contrast["dx"], contrast["dy"]) == (5, 2)
    (r0, r1), (c0, c1) = contrast["interior"]["rows"], contrast["interior"]["cols"]
    moved = np.abs(maps[2][1:, 3:] - maps[0][:-1, :-3])  # 5 / 2 rounds to 3 units
    assert (
        contrast["interior"]["max_abs_difference"] == moved[r0 - 1 : r1 - 1, c0 - 3 : c1 - 3].max()
    )


def test_a_stride_one_kernel_has_no_misaligned_shift(server: RunningServer) -> None:
    body = ok(post(server, "equivariance", encode(GREY, "PNG"), kernel="[[1, -1]]", dx=3))
    assert body["requested"]["exact"] and body["requested"]["dy"] == 1  # default: one jump
    assert body["contrast"] is None


def test_the_equivariance_picture(server: RunningServer, reference: Reference, cat: bytes) -> None:
    response = post(server, "equivariance", cat, format="png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    tensor = preprocess_bytes(cat, reference.manifest.preprocess)
    (original,) = reference.maps([tensor], "conv1")
    channel = int(np.argmax(original.reshape(96, -1).mean(axis=1)))
    assert response.headers["x-channel"] == str(channel)
    image = Image.open(io.BytesIO(response.content))
    assert image.mode == "RGB" and image.size == (3 * (CELL + 2) + 2, 2 * (CELL + 12 + 2) + 2)
    pixels = np.asarray(image)
    # Row 1 (the stride-aligned shift): the |difference| cell is black in its interior.
    top, left = 2 + 12, 2 + 2 * (CELL + 2)
    assert not pixels[top + 3 : top + CELL, left + 3 : left + CELL].any()
    # Row 2 (one pixel more): it is not.
    top += CELL + 12 + 2
    assert pixels[top + 6 : top + CELL, left + 6 : left + CELL].any()
    chosen = post(server, "equivariance", cat, format="png", channel=3)
    assert chosen.status_code == 200 and chosen.headers["x-channel"] == "3"


def numpy_unchanged(before: np.ndarray, after: np.ndarray) -> tuple[int, float, float]:
    same, zero = before == after, (before == 0) & (after == 0)
    return same.size, float(same.mean()), float(zero.mean())


def numpy_pool(array: np.ndarray, size: int, stride: int, op: str) -> np.ndarray:
    windows = sliding_window_view(array.astype(np.float64), (size, size), axis=(-2, -1))
    windows = windows[..., ::stride, ::stride, :, :]
    return windows.max(axis=(-1, -2)) if op == "max" else windows.mean(axis=(-1, -2))


def test_pool1_keeps_more_of_its_outputs_than_average_pooling(
    server: RunningServer, reference: Reference, cat: bytes
) -> None:
    body = ok(post(server, "pooling", cat, max_shift=3))
    assert (body["layer"], body["input_layer"]) == ("pool1", "conv1")
    assert (body["size"], body["stride"], body["pixels_per_step"]) == (3, 2, 4)
    assert body["model_max_abs_difference"] == 0.0
    tensor = preprocess_bytes(cat, reference.manifest.preprocess)
    (conv1,) = reference.maps([tensor], "conv1")
    (pool1,) = reference.maps([tensor], "pool1")
    assert np.array_equal(numpy_pool(conv1, 3, 2, "max"), pool1)  # pool1 is that max pool
    for entry in body["shifts"]:
        t = entry["shift"]
        moved = shifted(conv1, t, 0)
        first = -(-t // 2)  # windows start at 2j >= t
        for key, op in (("max_pool", "max"), ("avg_pool", "avg")):
            before = numpy_pool(conv1, 3, 2, op)[:, :, first:]
            after = numpy_pool(moved, 3, 2, op)[:, :, first:]
            compared, unchanged, zero = numpy_unchanged(before, after)
            got = entry[key]
            assert got["compared"] == compared
            if op == "max":  # a max is exact; an average of float32 values may round
                assert got["unchanged"] == pytest.approx(unchanged, rel=1e-12)
            assert got["zero"] == pytest.approx(zero, rel=1e-12)
        itself = numpy_unchanged(conv1[:, :, t:], moved[:, :, t:])
        assert entry["map_itself"]["compared"] == itself[0]
        assert entry["map_itself"]["unchanged"] == pytest.approx(itself[1], rel=1e-12)
    one = body["shifts"][0]
    assert one["max_pool"]["unchanged_nonzero"] > 2 * one["avg_pool"]["unchanged_nonzero"]
    assert one["map_itself"]["unchanged_nonzero"] == 0.0


def test_pooling_the_grey_image_against_numpy(server: RunningServer) -> None:
    body = ok(post(server, "pooling", encode(GREY, "PNG"), size=3, stride=2, direction="diagonal"))
    assert body["source"] == "image" and body["model_max_abs_difference"] is None
    grey = GREY.astype(np.float64)
    for entry in body["shifts"]:
        t = entry["shift"]
        assert (entry["dx"], entry["dy"]) == (t, t)
        first = -(-t // 2)
        for key, op in (("max_pool", "max"), ("avg_pool", "avg")):
            before = numpy_pool(grey, 3, 2, op)[first:, first:]
            after = numpy_pool(shifted(grey, t, t), 3, 2, op)[first:, first:]
            compared, unchanged, _ = numpy_unchanged(before, after)
            assert entry[key]["compared"] == compared
            assert entry[key]["unchanged"] == pytest.approx(unchanged, rel=1e-12)


def test_the_pooling_picture(server: RunningServer, cat: bytes) -> None:
    response = post(server, "pooling", cat, format="png")
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(response.content)).mode == "RGB"


TOO_BIG = encode(np.zeros((700, 700), np.uint8), "PNG")  # over the server's 400,000 pixels

BAD = [
    ("equivariance", {"layer": "conv9"}, 400, "unknown layer conv9; valid layers: conv1"),
    ("equivariance", {"layer": "fc7"}, 400, "fc7 is fully connected"),
    ("equivariance", {"dx": 224}, 400, "too large for the 227x227 input"),
    ("equivariance", {"dy": -(10**30)}, 400, "too large"),
    ("equivariance", {"preset": "edge", "stride": 0}, 422, "stride"),
    ("equivariance", {"preset": "edge", "stride": -4}, 422, "stride"),
    ("equivariance", {"stride": 2}, 400, "go with a kernel"),
    ("equivariance", {"layer": "conv1", "preset": "edge"}, 400, "not both"),
    ("equivariance", {"channel": 96, "format": "png"}, 400, "channel must lie in 0..95"),
    ("equivariance", {"kernel": "[[1, NaN]]"}, 400, "finite"),
    ("equivariance", {"preset": "edge", "image": TOO_BIG}, 413, "at most 400000"),
    ("equivariance", {"image": b"GIF89a but not really"}, 400, "cannot decode"),
    ("pooling", {"layer": "conv1"}, 400, "not a max-pooling layer: conv1"),
    ("pooling", {"layer": "pool7"}, 400, "unknown layer pool7"),
    ("pooling", {"max_shift": 9}, 413, "over the limit of 8"),
    ("pooling", {"max_shift": 0}, 422, "max_shift"),
    ("pooling", {"size": 0}, 422, "size"),
    ("pooling", {"size": 3, "stride": -1}, 422, "stride"),
    ("pooling", {"size": 65}, 413, "over the limit of 64"),
    ("pooling", {"size": 61, "max_shift": 8}, 400, "too large"),
    ("pooling", {"stride": 2}, 400, "goes with size"),
    ("pooling", {"layer": "pool3", "max_shift": 8, "direction": "up"}, 422, "direction"),
    ("pooling", {"image": b""}, 400, "empty"),
]


@pytest.fixture(scope="module")
def demo_server(exported_artifacts: Path, artefact_dir: Path) -> Iterator[RunningServer]:
    """A server with a small demo pixel limit, so crossing it is cheap."""
    with running_server(
        exported_artifacts, artefact_dir / "logs", max_demo_pixels="400000"
    ) as running:
        yield running


@pytest.mark.parametrize(("path", "form", "status", "message"), BAD)
def test_bad_input_is_a_one_line_4xx(
    demo_server: RunningServer, path: str, form: dict[str, Any], status: int, message: str
) -> None:
    fields = dict(form)
    image = fields.pop("image", encode(GREY, "PNG"))
    response = post(demo_server, path, image, **fields)
    assert response.status_code == status, response.text
    text = response.json()["error"]["message"]
    assert message in text and "\n" not in text


def test_every_answer_field_is_documented(server: RunningServer) -> None:
    document = httpx.get(f"{server.url}/openapi.json").json()
    schemas = document["components"]["schemas"]
    pending, seen = ["EquivarianceResponse", "PoolingResponse"], set()
    while pending:
        name = pending.pop()
        seen.add(name)
        for field, spec in schemas[name]["properties"].items():
            assert spec.get("description"), f"{name}.{field} has no description"
            refs = [spec.get("$ref"), *(s.get("$ref") for s in spec.get("anyOf", []))]
            refs += [spec.get("items", {}).get("$ref")]
            pending += [r.split("/")[-1] for r in refs if r and r.split("/")[-1] not in seen]
    assert {"Region", "Border", "Geometry", "ShiftResult", "Unchanged"} <= seen
    for path in ("/v1/demo/equivariance", "/v1/demo/pooling"):
        content = document["paths"][path]["post"]["responses"]["200"]["content"]
        assert {"application/json", "image/png"} <= set(content)
