"""Generated inputs: schemathesis over the service's own OpenAPI document, and two properties.

- Every /v1 route (KServe's v1 data plane at /v1/models included) and the read-only
  Triton extensions of /v2 (config, stats, the repository index), fuzzed from
  /openapi.json (valid and invalid requests): never a 5xx, and every answer matches the
  status codes, content types and schemas it documents. (The repository's load and
  unload are fuzzed on a server of their own, tests/service/test_v2_repository.py.)
- /v1/convolve over HTTP equals scipy.signal for random images, kernels, modes,
  paddings and strides.
- Preprocessing turns any image of any size >= 1x1 and any mode into the network's
  (3, crop, crop) float32 input, with the pixel values the image shows.
"""

from __future__ import annotations

import base64
import io
import json
from typing import Any

import httpx
import numpy as np
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from schemathesis import checks as st_checks
from scipy import signal

from core.preprocess import PreprocessSpec, preprocess_bytes
from service.app import create_app
from service.settings import Settings
from tests.support import RunningServer

EXAMPLES_PER_ROUTE = 20
SPEC = PreprocessSpec()


# The document is taken from the app here, at collection, because schemathesis needs it to
# generate the tests; test_the_fuzzed_document_is_the_one_served checks that the running
# server publishes exactly this document at /openapi.json.
DOCUMENT = create_app(Settings.model_validate({})).openapi()
# Two views of it: as generated (valid and invalid requests), and valid requests shaped by
# the hook below so that real images reach the model and every answer format is checked.
schema = schemathesis.openapi.from_dict(DOCUMENT)
shaped = schemathesis.openapi.from_dict(DOCUMENT)
shaped.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE])
# 413 is how this service refuses a value past a configured limit (a pool window larger
# than ALEXNET_MAX_POOL_SIZE, say): a rejection like the 4xx schemathesis expects by default.
_rejection = schema.config.checks.negative_data_rejection
_rejection.expected_statuses = [*_rejection.expected_statuses, "413"]
CHECKS = [
    st_checks.not_a_server_error,
    st_checks.status_code_conformance,
    st_checks.content_type_conformance,
    st_checks.response_headers_conformance,
    st_checks.response_schema_conformance,
]


def _small_image(width: int, height: int, mode: str, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).convert(mode).save(buffer, format="PNG")
    return buffer.getvalue()


VALID_IMAGES = st.builds(
    _small_image,
    st.integers(1, 48),
    st.integers(1, 48),
    st.sampled_from(["L", "RGB", "RGBA", "P"]),
    st.integers(0, 2**16),
)


KERNELS = st.lists(
    st.lists(st.integers(-3, 3), min_size=1, max_size=3), min_size=1, max_size=3
).filter(lambda rows: len({len(row) for row in rows}) == 1)
# Field values that make a request usable, so that answers of every format get checked too.
USABLE_FIELDS: dict[str, st.SearchStrategy[dict[str, Any]]] = {
    "/v1/convolve": st.one_of(
        KERNELS.map(lambda kernel: {"kernel": json.dumps(kernel), "preset": None}),
        st.sampled_from(["edge", "sobel_x", "gaussian", "identity"]).map(
            lambda name: {"preset": name, "kernel": None}
        ),
    ),
    "/v1/pool": st.fixed_dictionaries(
        {"size": st.integers(1, 3), "stride": st.one_of(st.none(), st.integers(1, 3))}
    ),
    # The model's layer, or a kernel on the image; shifts the image can hold (mostly).
    "/v1/demo/equivariance": st.one_of(
        st.fixed_dictionaries(
            {
                "layer": st.sampled_from([None, "conv1", "pool1", "conv2"]),
                "dx": st.integers(-20, 20),
                "dy": st.integers(-20, 20),
                "channel": st.none(),
                **dict.fromkeys(["kernel", "preset", "mode", "padding", "stride"], st.none()),
            }
        ),
        st.fixed_dictionaries(
            {
                "preset": st.sampled_from(["edge", "sobel_x", "gaussian"]),
                "padding": st.sampled_from(["valid", "same", "full"]),
                "stride": st.integers(1, 3),
                "dx": st.integers(-3, 3),
                "dy": st.integers(-3, 3),
                **dict.fromkeys(["layer", "kernel", "channel"], st.none()),
            }
        ),
    ),
    "/v1/demo/pooling": st.one_of(
        st.fixed_dictionaries(
            {
                "layer": st.sampled_from([None, "pool1", "pool2"]),
                "max_shift": st.integers(1, 3),
                "size": st.none(),
                "stride": st.none(),
            }
        ),
        st.fixed_dictionaries(
            {
                "size": st.integers(1, 3),
                "stride": st.one_of(st.none(), st.integers(1, 3)),
                "max_shift": st.integers(1, 2),
                "layer": st.none(),
            }
        ),
    ),
}


def _usable(body: dict[str, Any], image: bytes | None, fields: dict[str, Any]) -> dict[str, Any]:
    out = dict(body)
    if image is not None:
        out["image"] = [image] * len(body["image"]) if isinstance(body["image"], list) else image
    for name, value in fields.items():
        if value is None:
            out.pop(name, None)
        else:
            out[name] = value
    return out


def _instances(body: dict[str, Any], image: bytes) -> dict[str, Any]:
    """A KServe v1 body whose instances are a real image, in two of the accepted forms."""
    encoded = base64.b64encode(image).decode()
    return {**body, "instances": [{"b64": encoded}, {"image": {"b64": encoded}, "key": "k"}]}


def _with(case: schemathesis.Case, body: Any, parameters: dict[str, Any]) -> schemathesis.Case:
    case.body, case.path_parameters = body, parameters
    return case


@shaped.hook
def flatmap_case(
    context: schemathesis.HookContext, case: schemathesis.Case
) -> st.SearchStrategy[schemathesis.Case]:
    """Random bytes rarely decode: often the upload is a real (small) image, the fields usable."""
    body, parameters = case.body, dict(case.path_parameters or {})
    bodies = st.just(body)
    if isinstance(body, dict) and "image" in body:
        fields = st.one_of(st.just({}), USABLE_FIELDS.get(case.path, st.just({})))
        bodies = st.builds(_usable, st.just(body), st.one_of(st.none(), VALID_IMAGES), fields)
    if isinstance(body, dict) and "instances" in body:
        bodies = st.one_of(bodies, st.builds(_instances, st.just(body), VALID_IMAGES))
    # Names are mostly wrong when random; sometimes ask for the layer with filters or a
    # model, or for a conv channel that has patches.
    names = st.just(parameters)
    if "name" in parameters:
        names = st.sampled_from(
            [parameters, {**parameters, "name": "conv1"}, {**parameters, "name": "alexnet_image"}]
        )
    elif "layer" in parameters:
        channels = st.builds(
            lambda layer, channel: {**parameters, "layer": layer, "channel": channel},
            st.sampled_from(["conv1", "conv3", "conv5"]),
            st.integers(0, 95),
        )
        names = st.one_of(st.just(parameters), channels)
    return st.builds(_with, st.just(case), bodies, names)


# KServe v1 :explain answers 501 until it is wired to the explanations: documented, not a fault.
EXPLAIN = r":explain$"


def test_the_fuzzed_document_is_the_one_served(server: RunningServer) -> None:
    assert httpx.get(f"{server.url}/openapi.json").json() == DOCUMENT


@schema.include(path_regex=r"^/v1/").exclude(path_regex=EXPLAIN).parametrize()
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_v1_route_survives_generated_requests(
    server: RunningServer, case: schemathesis.Case
) -> None:
    checks = [*CHECKS, st_checks.negative_data_rejection]  # invalid requests get a 4xx
    case.call_and_validate(base_url=server.url, checks=checks, timeout=120)


@shaped.include(path_regex=r"^/v1/").exclude(path_regex=EXPLAIN).parametrize()
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck))
def test_every_v1_route_answers_usable_requests_as_documented(
    server: RunningServer, case: schemathesis.Case
) -> None:
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=120)


@shaped.include(path_regex=EXPLAIN).parametrize()
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck))
def test_kserve_explain_answers_501_or_a_4xx_until_it_is_wired(
    server: RunningServer, case: schemathesis.Case
) -> None:
    response = case.call(base_url=server.url, timeout=120)
    checks = [check for check in CHECKS if check is not st_checks.not_a_server_error]
    case.validate_response(response, checks=checks)
    assert response.status_code == 501 or 400 <= response.status_code < 500


# The read-only Triton extensions; load and unload change the server, so not on this one.
V2_EXTENSIONS = (
    r"^/v2/(models/stats|models/\{name\}/(versions/\{version\}/)?(config|stats)|repository/index)$"
)


@schema.include(path_regex=V2_EXTENSIONS).parametrize()
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck))
def test_v2_extension_routes_survive_generated_requests(
    server: RunningServer, case: schemathesis.Case
) -> None:
    checks = [*CHECKS, st_checks.negative_data_rejection]
    case.call_and_validate(base_url=server.url, checks=checks, timeout=120)


@shaped.include(path_regex=V2_EXTENSIONS).parametrize()
@settings(max_examples=EXAMPLES_PER_ROUTE, deadline=None, suppress_health_check=list(HealthCheck))
def test_v2_extension_routes_answer_usable_requests_as_documented(
    server: RunningServer, case: schemathesis.Case
) -> None:
    case.call_and_validate(base_url=server.url, checks=CHECKS, timeout=120)


# --- /v1/convolve equals scipy ----------------------------------------------------------


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@st.composite
def convolutions(draw: st.DrawFn) -> dict[str, Any]:
    rows, cols = draw(st.integers(1, 24)), draw(st.integers(1, 24))
    color = draw(st.sampled_from(["gray", "rgb"]))
    shape = (rows, cols) if color == "gray" else (rows, cols, 3)
    seed = draw(st.integers(0, 2**32 - 1))
    image = np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)
    k_rows, k_cols = draw(st.integers(1, 5)), draw(st.integers(1, 5))
    values = st.one_of(st.integers(-4, 4).map(float), st.floats(-3, 3, allow_nan=False, width=32))
    kernel = draw(
        st.lists(
            st.lists(values, min_size=k_cols, max_size=k_cols), min_size=k_rows, max_size=k_rows
        )
    )
    return {
        "image": image,
        "kernel": kernel,
        "color": color,
        "mode": draw(st.sampled_from(["convolution", "cross_correlation"])),
        "padding": draw(st.sampled_from(["valid", "same", "full"])),
        "stride": draw(st.integers(1, 3)),
    }


def scipy_reference(case: dict[str, Any]) -> np.ndarray | None:
    """What scipy computes (float64, per channel, every stride-th sample); None if it refuses."""
    function = signal.convolve2d if case["mode"] == "convolution" else signal.correlate2d
    image = case["image"].astype(np.float64)
    planes = [image] if image.ndim == 2 else [image[..., c] for c in range(3)]
    kernel = np.array(case["kernel"], dtype=np.float64)
    try:
        out = [function(p, kernel, mode=case["padding"]) for p in planes]
    except ValueError:  # 'valid' with a kernel that fits neither way
        return None
    step = case["stride"]
    result = out[0] if image.ndim == 2 else np.stack(out)
    return result[..., ::step, ::step]


@given(case=convolutions())
@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
def test_convolve_over_http_equals_scipy(server: RunningServer, case: dict[str, Any]) -> None:
    response = httpx.post(
        f"{server.url}/v1/convolve",
        files={"image": ("x.png", _png(case["image"]))},
        data={
            "kernel": json.dumps(case["kernel"]),
            "mode": case["mode"],
            "padding": case["padding"],
            "stride": str(case["stride"]),
            "color": case["color"],
            "format": "npy",
        },
        timeout=60,
    )
    expected = scipy_reference(case)
    if expected is None:
        assert response.status_code == 400, response.text
        return
    assert response.status_code == 200, response.text
    got = np.load(io.BytesIO(response.content))
    assert got.dtype == np.float32 and got.shape == expected.shape
    scale = 255 * np.abs(np.array(case["kernel"])).sum()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5 * max(scale, 1))


# --- preprocessing: any size, any mode ---------------------------------------------------

MODES = ["L", "LA", "RGB", "RGBA", "P", "CMYK", "I;16", "1"]


def _constant_image(mode: str, size: tuple[int, int], value: int) -> tuple[Image.Image, np.ndarray]:
    """An image of one colour in `mode`, and the RGB colour the service must see in it."""
    v = value % 256
    if mode == "I;16":
        image = Image.fromarray(np.full(size[::-1], v * 257, np.uint16))
        return image, np.array([v, v, v], np.float64)
    if mode == "1":
        on = 255 if v >= 128 else 0
        return Image.new("1", size, on), np.array([on] * 3, np.float64)
    colour: dict[str, int | tuple[int, ...]] = {
        "L": v,
        "LA": (v, 255),
        "RGB": (v, 255 - v, v // 2),
        "RGBA": (v, 255 - v, v // 2, 255),
    }
    if mode in colour:
        image = Image.new(mode, size, colour[mode])
        return image, np.asarray(image.convert("RGB"), np.float64)[0, 0]
    if mode == "P":
        image = Image.new("RGB", size, (v, 255 - v, 7)).quantize(4)
        return image, np.asarray(image.convert("RGB"), np.float64)[0, 0]
    image = Image.new("CMYK", size, (v, 255 - v, 3, 9))
    return image, np.asarray(image.convert("RGB"), np.float64)[0, 0]


def _encode(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="TIFF" if image.mode == "CMYK" else "PNG")
    return buffer.getvalue()


@given(
    mode=st.sampled_from(MODES),
    width=st.integers(1, 300),
    height=st.integers(1, 300),
    value=st.integers(0, 255),
)
@settings(max_examples=60, deadline=None)
def test_any_image_becomes_the_network_input(
    mode: str, width: int, height: int, value: int
) -> None:
    image, rgb = _constant_image(mode, (width, height), value)
    tensor = preprocess_bytes(_encode(image), SPEC)
    assert tensor.shape == (3, SPEC.crop, SPEC.crop) and tensor.dtype == np.float32
    # One colour in, one colour out: resizing a constant image keeps it constant.
    expected = (rgb / 255 - np.array(SPEC.mean)) / np.array(SPEC.std)
    np.testing.assert_allclose(
        tensor, np.broadcast_to(expected[:, None, None], tensor.shape), atol=0.02
    )


@given(
    mode=st.sampled_from(MODES),
    width=st.integers(1, 64),
    height=st.integers(1, 64),
    seed=st.integers(0, 99),
)
@settings(max_examples=30, deadline=None)
def test_noisy_images_of_every_mode_stay_in_range(
    mode: str, width: int, height: int, seed: int
) -> None:
    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 4), dtype=np.uint8)
    image = Image.fromarray(pixels, "RGBA")
    image = image.convert("L").convert("I;16") if mode == "I;16" else image.convert(mode)
    tensor = preprocess_bytes(_encode(image), SPEC)
    low = (0 - np.array(SPEC.mean)) / np.array(SPEC.std)
    high = (1 - np.array(SPEC.mean)) / np.array(SPEC.std)
    assert tensor.shape == (3, SPEC.crop, SPEC.crop) and tensor.dtype == np.float32
    assert np.isfinite(tensor).all()
    assert (tensor >= low[:, None, None] - 1e-5).all() and (
        tensor <= high[:, None, None] + 1e-5
    ).all()
